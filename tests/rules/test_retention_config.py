"""`retention:` in rules.yaml: optional periods, refused when zero, negative or misspelt."""

from __future__ import annotations

from datetime import timedelta

import pytest

from rules import RulesError, parse_rules

from .helpers import BASE, config_with


def test_absent_keeps_everything() -> None:
    assert config_with().retention.periods() == {}


def test_periods_given_are_read_in_removal_order() -> None:
    config = config_with(extra="retention: {closed_tasks: 730d, raw_events: 30d}\n")
    assert config.retention.periods() == {"raw_events": timedelta(days=30),
                                          "closed_tasks": timedelta(days=730)}
    assert config.retention.messages is None


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ("retention:\n  messages: 365 days\n",
         "test.yaml:24:13: retention.messages: invalid duration '365 days': write it like "
         "15m, 2h, 1d, 90s or 1h30m"),
        ("retention:\n  raw_events: 0d\n",
         "test.yaml:24:15: retention.raw_events: a retention period must be longer than zero, "
         "e.g. 30d"),
        ("retention:\n  closed_task: 730d\n",
         "test.yaml:24:3: retention.closed_task: unknown key 'closed_task' "
         "(did you mean 'closed_tasks'?)"),
    ],
)
def test_invalid_retention_is_reported_at_its_position(extra: str, expected: str) -> None:
    assert BASE.count("\n") == 22  # the retention block starts on line 23
    with pytest.raises(RulesError) as caught:
        parse_rules(BASE + extra, "test.yaml")
    assert [str(issue) for issue in caught.value.issues] == [expected]
