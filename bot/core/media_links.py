"""Signed, expiring links to a customer's media, so that an agent can open it from a card.

A link carries the id of the inbound `Message`, signed with the WhatsApp app secret under a
salt of its own (a media token is no use as anything else); `GET /media/{token}` checks it
and downloads the media through the Graph API (bot/webhooks/media.py).
"""

from datetime import timedelta

from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

SALT = "opsbot-media"


class MediaLinkInvalid(Exception):
    """The token was not signed by us (tampered, cut, or signed with another secret)."""


class MediaLinkExpired(Exception):
    """The token was signed by us but is older than its time to live."""


class MediaLinks:
    """Makes and checks the links of `base_url` (PUBLIC_URL) to a message's media."""

    def __init__(self, base_url: str, secret: str, ttl: timedelta) -> None:
        self.base_url = base_url.rstrip("/")
        self.ttl = ttl
        self._serializer = URLSafeTimedSerializer(secret, salt=SALT)

    def url_for(self, message_id: int) -> str:
        """The link to the media of inbound message `message_id`."""
        return f"{self.base_url}/media/{self._serializer.dumps(message_id)}"

    def message_id_of(self, token: str) -> int:
        """The message id a token carries. Raises MediaLinkExpired when it is older than the
        time to live, MediaLinkInvalid when it is not ours."""
        try:
            value = self._serializer.loads(token, max_age=self.ttl.total_seconds())
        except SignatureExpired as exc:
            raise MediaLinkExpired("the link expired") from exc
        except BadSignature as exc:
            raise MediaLinkInvalid("the link is not valid") from exc
        if not isinstance(value, int) or isinstance(value, bool):
            raise MediaLinkInvalid("the link is not valid")
        return value
