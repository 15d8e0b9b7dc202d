"""The services of this process, for RQ job entry points (built lazily, never at import)."""

from bot.services import Services

_current: Services | None = None


def install_services(services: Services | None) -> None:
    """Makes `services` the ones job entry points use in this process (None forgets them)."""
    global _current
    _current = services


def current_services() -> Services:
    """This process's services, built from the environment on first use."""
    global _current
    if _current is None:
        from bot.bootstrap import build_services
        from bot.settings import Settings

        _current = build_services(Settings(), migrate=False)
    return _current
