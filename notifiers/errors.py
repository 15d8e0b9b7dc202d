"""How a channel adapter reports a failed delivery, whatever the channel."""


class DeliveryError(Exception):
    """A message could not be delivered; `str(error)` says why."""


class TransientDeliveryError(DeliveryError):
    """Worth trying again: a 5xx, a network error or a rate limit.

    `retry_after` (seconds) is set when the API said how long to wait (429 Retry-After).
    """

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class PermanentDeliveryError(DeliveryError):
    """Trying again will not help (unknown chat, blocked bot, bad token): use another channel."""
