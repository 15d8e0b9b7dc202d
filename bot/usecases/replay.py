"""Rules replay (`opsbot rules replay`, the console's Rules page): a candidate rules file
evaluated on the decisions recorded in a period, each at its own instant, in one read-only
transaction: nothing is written or sent. Customers are shown as `C-<id>` (never a number) and
their words as a short snippet with digits, e-mail addresses and links masked."""

import multiprocessing
import re
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from notifiers.texts import shorten
from rules import RulesConfig, parse_duration
from rules.explain import parse_instant
from rules.replay import (
    DEADLINES,
    RecordedDecision,
    Replayed,
    ReplaySummary,
    instant,
    replay_decision,
)
from store.db import Database
from store.decisions import read_decisions, split_period

DEFAULT_WINDOW = "7d"
PART_SMALLEST = 10_000  # decisions: a smaller part is not worth a process
SNIPPET_LENGTH = 40
ERASED_SNIPPET = "[erased]"
# An outcome's values as a changed row shows them: the compared FIELDS, `sla` with its deadlines.
SHOWN = ("ignore", "matched", "category", "priority", "tags", "team", "skills", "sla",
         *DEADLINES, "agent")
_URL = re.compile(r"(?i)\b(?:https?://|www\.)\S+")
_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
_DIGIT = re.compile(r"\d")


@dataclass(frozen=True)
class ReplayedMessage:
    """A message whose outcome would change (`changed` names the fields; `old` and `new` hold
    the SHOWN values), or that cannot be replayed (`blocked_by` the rule that needs its
    erased text)."""

    at: datetime
    customer: str | None
    task: str | None
    snippet: str
    effect: str
    changed: tuple[str, ...] = ()
    old: dict[str, Any] = field(default_factory=dict)
    new: dict[str, Any] = field(default_factory=dict)
    blocked_by: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"at": self.at.isoformat(), "customer": self.customer, "task": self.task,
                "snippet": self.snippet, "effect": self.effect, "changed": list(self.changed),
                "old": self.old, "new": self.new, "blocked_by": self.blocked_by}


@dataclass
class Replay:
    """A candidate replayed over [since, until): the summary, the changed messages and the
    ones that could not be replayed (each list at most `keep` long when a keep was given)."""

    since: datetime
    until: datetime
    candidate_sha256: str
    summary: ReplaySummary = field(default_factory=ReplaySummary)
    changed: list[ReplayedMessage] = field(default_factory=list)
    not_replayable: list[ReplayedMessage] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """The replay as JSON values: the period, the summary, the messages."""
        return {"since": self.since.isoformat(), "until": self.until.isoformat(),
                "candidate_sha256": self.candidate_sha256, "summary": self.summary.as_dict(),
                "changed": [row.as_dict() for row in self.changed],
                "not_replayable": [row.as_dict() for row in self.not_replayable]}


def replay_period(since: str | None, start: str | None, end: str | None, *,
                  now: datetime) -> tuple[datetime, datetime]:
    """[since, until) of a window (`since`: 7d, 24h, 90m) ending at `end` (ISO 8601, default
    `now`), or of `start` to `end` (default: the last DEFAULT_WINDOW); raises ValueError with
    what to write."""
    if since is not None and (start is not None or end is not None):
        raise ValueError("give --since, or --from and --to, not both")
    until = parse_instant(end) if end else now
    first = parse_instant(start) if start else until - _window(since or DEFAULT_WINDOW)
    if first >= until:
        raise ValueError(f"the period starts ({first.isoformat()}) after it ends "
                         f"({until.isoformat()})")
    return first, until


def _window(text: str) -> timedelta:
    try:
        return parse_duration(text)
    except ValueError:
        raise ValueError(f"{text!r} is not a duration: write 7d, 24h or 90m") from None


def replay_rules(db: Database, candidate: RulesConfig, *, since: datetime, until: datetime,
                 keep: int | None = None, workers: int = 1) -> Replay:
    """Replays `candidate` on the decisions recorded in [since, until), read only; keeps at
    most `keep` messages in each list (all when None). With `workers` > 1, consecutive parts
    of the period (of at least PART_SMALLEST decisions) are replayed in that many processes
    at once, each with its own connection, and merged in order (forked: call it from a
    process without threads, such as the CLI). Raises what the database raises."""
    if workers > 1:
        with db.transaction(readonly=True) as session:
            cuts = split_period(session, since=since, until=until, parts=workers,
                                smallest=PART_SMALLEST)
        if cuts:
            periods = list(zip([since, *cuts], [*cuts, until], strict=True))
            return _replay_in_processes(db, candidate, periods, keep)
    return _replay_part(db, candidate, (since, until), keep)


def _replay_part(db: Database, candidate: RulesConfig, period: tuple[datetime, datetime],
                 keep: int | None) -> Replay:
    replay = Replay(*period, candidate.sha256)
    with db.transaction(readonly=True) as session:
        for recorded in read_decisions(session, since=period[0], until=period[1]):
            _count(replay, replay_decision(candidate, recorded), keep)
    return replay


def _replay_in_processes(db: Database, candidate: RulesConfig,
                         periods: list[tuple[datetime, datetime]], keep: int | None) -> Replay:
    # Forked children inherit the candidate (its compiled rules need no pickling) and the
    # keys; each opens its own connection. Only the periods and the results cross over.
    context = multiprocessing.get_context("fork")
    with ProcessPoolExecutor(len(periods), mp_context=context, initializer=_start_worker,
                             initargs=(db.url, candidate)) as pool:
        parts = list(pool.map(_replay_in_worker, periods, [keep] * len(periods)))
    replay = Replay(periods[0][0], periods[-1][1], candidate.sha256)
    for part in parts:
        replay.summary.merge(part.summary)
        for mine, theirs in ((replay.changed, part.changed),
                             (replay.not_replayable, part.not_replayable)):
            mine.extend(theirs[: None if keep is None else max(keep - len(mine), 0)])
    return replay


_WORKER: dict[str, Any] = {}  # in a replay's worker process: its database and the candidate


def _start_worker(url: str, candidate: RulesConfig) -> None:
    _WORKER.update(db=Database(url), candidate=candidate)


def _replay_in_worker(period: tuple[datetime, datetime], keep: int | None) -> Replay:
    return _replay_part(_WORKER["db"], _WORKER["candidate"], period, keep)


def _count(replay: Replay, replayed: Replayed, keep: int | None) -> None:
    replay.summary.add(replayed)
    if replayed.new is None:
        rows = replay.not_replayable
    elif replayed.changed:
        rows = replay.changed
    else:
        return
    if keep is None or len(rows) < keep:
        rows.append(replayed_message(replayed))


def replayed_message(replayed: Replayed) -> ReplayedMessage:
    """The row that shows one changed or not replayable decision."""
    recorded = replayed.decision
    return ReplayedMessage(
        at=recorded.at, customer=customer_ref(recorded), task=task_ref(recorded),
        snippet=snippet(recorded.text), effect=recorded.effect, changed=replayed.changed,
        old=shown_outcome(recorded.outcome), new=shown_outcome(replayed.new or {}),
        blocked_by=replayed.blocked_by)


def customer_ref(recorded: RecordedDecision) -> str | None:
    return f"C-{recorded.contact_id}" if recorded.contact_id is not None else None


def task_ref(recorded: RecordedDecision) -> str | None:
    return f"T-{recorded.task_id}" if recorded.task_id is not None else None


def shown_outcome(outcome: dict[str, Any]) -> dict[str, Any]:
    """The SHOWN values of a recorded or replayed outcome ({} stays {})."""
    return {name: outcome.get(name) for name in SHOWN} if outcome else {}


def snippet(text: str | None) -> str:
    """At most SNIPPET_LENGTH characters of `text` on one line, digits, e-mail addresses and
    links masked; ERASED_SNIPPET when the text is gone."""
    if text is None:
        return ERASED_SNIPPET
    masked = _DIGIT.sub("#", _EMAIL.sub("[email]", _URL.sub("[link]", text)))
    return shorten(" ".join(masked.split()), SNIPPET_LENGTH)


def describe_change(name: str, old: dict[str, Any], new: dict[str, Any],
                    show: Callable[[datetime], str] | None = None) -> str:
    """`priority: normal → high`: one changed field, for people; `show` writes a deadline
    (default: `2026-11-24 10:00 UTC`)."""
    show = show or _utc_minute
    return f"{name}: {_shown(name, old, show)} → {_shown(name, new, show)}"


def _shown(name: str, outcome: dict[str, Any], show: Callable[[datetime], str]) -> str:
    if name == "sla":
        policy = outcome.get("sla") or "—"
        if not any(outcome.get(key) for key in DEADLINES):
            return policy
        first, resolution = (show(instant(outcome[key])) if outcome.get(key) else "—"
                             for key in DEADLINES)
        return f"{policy} (first response {first}, resolution {resolution})"
    value = outcome.get(name)
    if isinstance(value, list):
        return ", ".join(value) or "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return "—" if value is None else str(value)


def _utc_minute(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
