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
