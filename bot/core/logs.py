"""The one logging set-up of opsbot's processes."""

import logging


def configure_logging(level: int = logging.INFO) -> None:
    """Timestamped lines with the level and the logger's name, on stderr."""
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
