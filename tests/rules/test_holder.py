"""Hot reload: valid edits are swapped in, broken ones keep the previous rules."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from rules import RulesError, RulesHolder

from .helpers import BASE

RULE = "rules:\n  - {name: r, then: {category: %s}}\n"


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def write(path: Path, category: str, *, bump: int) -> None:
    path.write_text(BASE + RULE % category, encoding="utf-8")
    # Same-second edits would keep the mtime on coarse filesystems; move it explicitly.
    stamp = 1_700_000_000 + bump
    os.utime(path, (stamp, stamp))


def test_first_load_failure_raises(tmp_path: Path) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text("version: [", encoding="utf-8")
    with pytest.raises(RulesError):
        RulesHolder(path)


def test_reload_swaps_valid_and_keeps_old_on_error(tmp_path: Path) -> None:
    path, clock = tmp_path / "rules.yaml", FakeClock()
    write(path, "sales", bump=0)
    holder = RulesHolder(path, check_every=2.0, clock=clock)
    first = holder.current
    assert first.rules[0].then.category == "sales"

    write(path, "support", bump=1)
    clock.now = 1.0
    assert holder.current is first  # not checked yet: at most every 2 s
    clock.now = 2.5
    assert holder.current.rules[0].then.category == "support"

    path.write_text(BASE + RULE % "nonsense", encoding="utf-8")
    os.utime(path, (1_700_000_010, 1_700_000_010))
    clock.now = 5.0
    assert holder.current.rules[0].then.category == "support"
    assert holder.last_error and "rules[0].then.category" in str(holder.last_error[0])

    write(path, "marketing", bump=20)
    assert holder.reload() == []
    assert holder.current.rules[0].then.category == "marketing"
    assert holder.last_error == []


def test_unchanged_file_is_not_reparsed(tmp_path: Path) -> None:
    path, clock = tmp_path / "rules.yaml", FakeClock()
    write(path, "sales", bump=0)
    holder = RulesHolder(path, clock=clock)
    first = holder.current
    clock.now = 100.0
    assert holder.current is first
