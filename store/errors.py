"""Domain errors: their message is meant to be shown to a person as it is."""


class DomainError(Exception):
    """A refused operation; `str(error)` is a sentence for the person who asked."""


class NotFound(DomainError):
    pass


class IllegalTransition(DomainError):
    pass


class NotAllowed(DomainError):
    pass


class ConcurrentUpdate(DomainError):
    pass


def describe_error(error: Exception) -> str:
    """`error` as one line safe to log and to keep (`opsbot events failed`): a database error
    is named by its driver's class and the server's first line, without the DETAIL lines and
    SQL that can quote customers' data."""
    original = getattr(error, "orig", None)
    if isinstance(original, Exception):
        first = (str(original).strip().splitlines() or [""])[0]
        return f"{error.__class__.__name__} ({original.__class__.__name__}): {first}"
    return f"{error.__class__.__name__}: {error}"
