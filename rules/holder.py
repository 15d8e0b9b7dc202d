"""Hot reload: keep serving the last good rules while an admin edits the file.
This is the one piece of rules/ that reads the clock and the disk; evaluation stays pure."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path

from rules.config import RulesConfig
from rules.errors import RuleIssue, RulesError
from rules.loader import load_rules

log = logging.getLogger(__name__)


class RulesHolder:
    """The current RulesConfig of `path`, re-read when the file changes."""

    def __init__(self, path: str | Path, *, check_every: float = 2.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        """Load `path` now; raise RulesError if this first load fails."""
        self.path = Path(path)
        self.check_every = check_every
        self.last_error: list[RuleIssue] = []
        self._clock = clock
        self._lock = threading.Lock()
        self._stamp = self._file_stamp()
        self._config = load_rules(self.path)
        self._checked_at = clock()

    @property
    def current(self) -> RulesConfig:
        """Return the live config; at most every `check_every` seconds, reload it if the
        file's mtime or size changed (a broken file keeps the old config)."""
        if self._clock() - self._checked_at >= self.check_every:
            self._check()
        return self._config

    def reload(self) -> list[RuleIssue]:
        """Re-read the file now; return [] when the new config is in use, else its issues."""
        with self._lock:
            self._checked_at = self._clock()
            self._stamp = self._file_stamp()
            try:
                config = load_rules(self.path)
            except RulesError as exc:
                self.last_error = exc.issues
                log.error("rules reload failed, keeping the previous rules:\n%s", exc)
                return exc.issues
            self._config, self.last_error = config, []
            log.info("rules reloaded from %s (%d rules)", self.path, len(config.rules))
            return []

    def _check(self) -> None:
        with self._lock:
            self._checked_at = self._clock()
            changed = self._file_stamp() != self._stamp
        if changed:
            self.reload()

    def _file_stamp(self) -> tuple[int, int] | None:
        try:
            stat = self.path.stat()
        except OSError:
            return None
        return stat.st_mtime_ns, stat.st_size
