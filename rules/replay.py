"""Replaying recorded rules decisions under another rules file (`opsbot rules replay`): the
outcome a candidate would have given each recorded message, at the instant it was evaluated,
with routing by the agents' states as they were; and the summary of what would change.

When the customer was erased, their text and a Flow's answers are gone. A decision is then
not replayable when the candidate's evaluation reaches a rule that tests them: in file order,
the enabled rules up to the one that decided (the last matched rule that does not
`continue`; all of them when none stops) are looked at, and one whose `when` has `keywords`,
`regex`, `word_count` or `flow: {fields}` anywhere (even under `not` or in an `any` branch that
need not be tried) blocks the replay. Rules after the deciding one are never reached, so they
block nothing. This is conservative at the level of a rule: a text condition that evaluation
would have skipped still counts. The language the evaluation settled on is recorded, so a
`language` condition needs no text. Contact tags are erased too, but no condition tests them.
"""

from __future__ import annotations

import re
import statistics
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from rules.conditions import Condition
from rules.config import RulesConfig
from rules.engine import Decision, evaluate
from rules.recording import Recorded, read_agents, read_facts, record_outcome
from rules.routing import route
from rules.sla import due_times

CREATED = "created"  # the effect of a decision that created a task (store.models.DecisionEffect)
FIELDS = ("ignore", "matched", "category", "priority", "tags", "team", "skills", "sla", "agent")
DEADLINES = ("first_response_due", "resolution_due")
MATRICES = ("category", "priority", "team")
METRICS = ("changed", *FIELDS, "not_replayable")


@dataclass(frozen=True)
class RecordedDecision:
    """One recorded decision with what is kept beside it: the customer's `text` and Flow
    answers (None: erased), their `tags` (None: erased), `last_agent`, the agent of their
    latest earlier task (sticky routing), and `routed_at`, when its task was created and
    routed (later than `at` for a message that arrived late; None: at `at`)."""

    id: int
    at: datetime
    effect: str
    facts: Mapping[str, Any]
    outcome: Mapping[str, Any]
    agents: Mapping[str, list] | None = None
    text: str | None = ""
    flow_fields: Mapping[str, Any] | None = None
    tags: list[str] | None = field(default_factory=list)
    last_agent: str | None = None
    routed_at: datetime | None = None
    message_id: int = 0
    contact_id: int | None = None
    task_id: int | None = None


@dataclass(frozen=True)
class Replayed:
    """One decision replayed: the `new` outcome (record_outcome's shape) and the FIELDS that
    differ from the recorded one; or, not replayable, `blocked_by` the rule that needs the
    erased text (new None)."""

    decision: RecordedDecision
    new: dict[str, Any] | None
    changed: tuple[str, ...] = ()
    blocked_by: str | None = None


def replay_decision(config: RulesConfig, recorded: RecordedDecision) -> Replayed:
    """Evaluates `config` on the recorded facts at their instant; a created task also gets its
    deadlines (from that instant) and routing (by the recorded agents' states, when it was
    routed)."""
    inputs = read_facts(recorded.facts, text=recorded.text, flow_fields=recorded.flow_fields,
                        tags=recorded.tags)
    decision = evaluate(config, message=inputs.message, contact=inputs.contact,
                        history=inputs.history, now=recorded.at)
    if not inputs.text_known:
        blocker = text_rule_reached(config, decision)
        if blocker is not None:
            return Replayed(recorded, None, blocked_by=blocker)
    new = _new_outcome(config, recorded, inputs, decision)
    return Replayed(recorded, new, changed_fields(recorded.outcome, new))


def _new_outcome(config: RulesConfig, recorded: RecordedDecision, inputs: Recorded,
                 decision: Decision) -> dict[str, Any]:
    # Only a created task was timed and routed; its agents' states were recorded for that.
    if recorded.effect != CREATED or decision.ignore:
        return record_outcome(decision)
    due = due_times(config, priority=decision.priority, start=recorded.at, sla=decision.sla)
    language = decision.language or inputs.contact.language or config.default_language
    routing = route(config, team=decision.team, skills=list(decision.skills), language=language,
                    agents=read_agents(recorded.agents), now=recorded.routed_at or recorded.at,
                    last_agent=recorded.last_agent)
    return record_outcome(decision, due=due, routing=routing)


def text_rule_reached(config: RulesConfig, decision: Decision) -> str | None:
    """The first rule evaluation reaches that tests the text or a Flow's answers, or None
    (module docstring: which rules are reached)."""
    matched = {match.name for match in decision.matched}
    for rule in config.rules:
        if not rule.enabled:
            continue
        if reads_text(rule.when):
            return rule.name
        if rule.name in matched and not rule.continue_:
            return None
    return None


def reads_text(cond: Condition) -> bool:
    """Whether `cond` tests, anywhere inside it, what the customer wrote."""
    if cond.keywords or cond.regex is not None or cond.word_count or (
            cond.flow is not None and cond.flow.fields):
        return True
    inner = (*(cond.all_ or ()), *(cond.any_ or ()), *((cond.not_,) if cond.not_ else ()))
    return any(reads_text(part) for part in inner)


def changed_fields(old: Mapping[str, Any], new: Mapping[str, Any]) -> tuple[str, ...]:
    """The FIELDS whose values differ between two outcomes; `sla` is the policy and both
    deadlines (as instants), tags and skills compare as sets."""
    return tuple(name for name in FIELDS if _differs(old, new, name))


def _differs(old: Mapping[str, Any], new: Mapping[str, Any], name: str) -> bool:
    # Equal values first: most fields of most messages do not change, and that test is cheap.
    before, after = old.get(name), new.get(name)
    if name == "sla":
        return before != after or any(
            instant(old.get(key)) != instant(new.get(key))
            for key in DEADLINES if old.get(key) != new.get(key))
    if before == after:
        return False
    return name not in _SETS or frozenset(before or ()) != frozenset(after or ())


_SETS = ("tags", "skills")


def instant(value: str | None) -> datetime | None:
    """The instant of a recorded ISO 8601 deadline (None stays None)."""
    return datetime.fromisoformat(value) if value else None


@dataclass
class ReplaySummary:
    """What replaying many decisions found, added one decision at a time. `fields` counts the
    changed messages per field; `matrices` the old → new pairs of every replayed message;
    `moves` the signed shifts, in seconds, of the deadlines that moved; `rules` how many
    messages each rule gains and loses; `blocked_by` the not replayable ones per rule."""

    replayed: int = 0
    changed: int = 0
    not_replayable: int = 0
    fields: Counter = field(default_factory=Counter)
    matrices: dict[str, Counter] = field(
        default_factory=lambda: {name: Counter() for name in MATRICES})
    moves: dict[str, list[float]] = field(default_factory=lambda: {key: [] for key in DEADLINES})
    rules: dict[str, Counter] = field(
        default_factory=lambda: {"gained": Counter(), "lost": Counter()})
    blocked_by: Counter = field(default_factory=Counter)

    def add(self, replayed: Replayed) -> None:
        """Counts one replayed decision in."""
        self.replayed += 1
        if replayed.new is None:
            self.not_replayable += 1
            self.blocked_by[replayed.blocked_by] += 1
            return
        old, new = replayed.decision.outcome, replayed.new
        self.changed += bool(replayed.changed)
        self.fields.update(replayed.changed)
        for name in MATRICES:
            self.matrices[name][(old.get(name), new.get(name))] += 1
        if "sla" in replayed.changed:  # else no deadline moved
            self._count_moves(old, new)
        if "matched" in replayed.changed:
            before, after = set(old.get("matched") or ()), set(new["matched"])
            self.rules["gained"].update(after - before)
            self.rules["lost"].update(before - after)

    def merge(self, other: ReplaySummary) -> None:
        """Counts in the summary of another part of the same replay (a later period)."""
        self.replayed += other.replayed
        self.changed += other.changed
        self.not_replayable += other.not_replayable
        self.fields.update(other.fields)
        self.blocked_by.update(other.blocked_by)
        for name in MATRICES:
            self.matrices[name].update(other.matrices[name])
        for key in DEADLINES:
            self.moves[key].extend(other.moves[key])
        for kind in self.rules:
            self.rules[kind].update(other.rules[kind])

    def _count_moves(self, old: Mapping[str, Any], new: Mapping[str, Any]) -> None:
        for key in DEADLINES:
            was, now = instant(old.get(key)), instant(new.get(key))
            if was is not None and now is not None and was != now:
                self.moves[key].append((now - was).total_seconds())

    def moved(self, name: str) -> list[tuple[Any, Any, int]]:
        """The (old, new, count) pairs of matrix `name` whose value changed, most first."""
        pairs = [(old, new, count) for (old, new), count in self.matrices[name].items()
                 if old != new]
        return sorted(pairs, key=lambda pair: (-pair[2], str(pair[0]), str(pair[1])))

    def metric(self, name: str) -> int:
        """The count behind a METRICS name."""
        if name in ("changed", "not_replayable"):
            return getattr(self, name)
        return self.fields[name]

    def as_dict(self) -> dict[str, Any]:
        """The summary as JSON values."""
        return {
            "replayed": self.replayed, "changed": self.changed,
            "not_replayable": self.not_replayable,
            "fields": {name: self.fields[name] for name in FIELDS},
            "matrices": {name: [{"old": old, "new": new, "count": count}
                                for (old, new), count in sorted(pairs.items(), key=_pair_key)]
                         for name, pairs in self.matrices.items()},
            "deadlines": {key: move_stats(shifts) for key, shifts in self.moves.items()},
            "rules": {kind: dict(sorted(counts.items())) for kind, counts in self.rules.items()},
            "not_replayable_by_rule": dict(sorted(self.blocked_by.items())),
        }


def _pair_key(item: tuple[tuple[Any, Any], int]) -> tuple[str, str]:
    (old, new), _ = item
    return str(old or ""), str(new or "")


def move_stats(shifts: list[float]) -> dict[str, Any]:
    """How deadlines moved: how many, earlier and later, the median shift and the largest
    one (signed seconds; None when none moved)."""
    return {"moved": len(shifts), "earlier": sum(1 for s in shifts if s < 0),
            "later": sum(1 for s in shifts if s > 0),
            "median_seconds": statistics.median(shifts) if shifts else None,
            "max_seconds": max(shifts, key=abs) if shifts else None}


_THRESHOLD = re.compile(r"\s*([a-z_]+)\s*(>=|>)\s*(\d+(?:\.\d+)?)\s*(%?)\s*")


@dataclass(frozen=True)
class Threshold:
    """`METRIC>N`, `METRIC>=N`, or with `N%` a share of the replayed messages."""

    metric: str
    at_least: bool
    limit: float
    percent: bool

    def exceeded(self, summary: ReplaySummary) -> str | None:
        """A sentence saying how `summary` exceeds this threshold, or None."""
        count = summary.metric(self.metric)
        value = 100 * count / summary.replayed if self.percent and summary.replayed else count
        if not (value >= self.limit if self.at_least else value > self.limit):
            return None
        shown = f"{value:.1f}% ({count} of {summary.replayed})" if self.percent else str(count)
        return f"{self.metric}: {shown}, over the threshold {self}"

    def __str__(self) -> str:
        return (f"{self.metric}{'>=' if self.at_least else '>'}{self.limit:g}"
                f"{'%' if self.percent else ''}")


def parse_threshold(text: str) -> Threshold:
    """The Threshold `text` says; raises ValueError with what to write instead."""
    found = _THRESHOLD.fullmatch(text)
    if found is None:
        raise ValueError(f"{text!r} is not a threshold: write METRIC>N or METRIC>N% (also >=), "
                         f"METRIC one of {', '.join(METRICS)}")
    metric, operator, limit, percent = found.groups()
    if metric not in METRICS:
        raise ValueError(f"{text!r}: no metric {metric!r}; use one of {', '.join(METRICS)}")
    return Threshold(metric, operator == ">=", float(limit), percent == "%")
