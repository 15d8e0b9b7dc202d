"""What `opsbot rules replay` prints: its thresholds read from the options, and a replay as
text (summary, then the changed messages) or CSV (one row per changed message)."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from datetime import datetime, timedelta

from bot.usecases.replay import SHOWN, Replay, ReplayedMessage, describe_change
from rules import format_duration
from rules.replay import FIELDS, MATRICES, Threshold, parse_threshold


def read_thresholds(expressions: list[str]) -> list[Threshold]:
    """The --fail-if thresholds; raises ValueError naming the bad one."""
    return [parse_threshold(text) for text in expressions]


def replay_lines(replay: Replay, candidate: str) -> Iterator[str]:
    """The replay for people: the summary, then each changed message."""
    summary = replay.summary
    yield (f"Replayed {candidate} (sha256 {replay.candidate_sha256[:12]}) on the decisions of "
           f"{_minute(replay.since)} to {_minute(replay.until)} UTC")
    yield (f"Messages replayed: {summary.replayed}; would change: {summary.changed} "
           f"({_share(summary.changed, summary.replayed)}); not replayable: "
           f"{summary.not_replayable}")
    changed = [f"{name} {summary.fields[name]}" for name in FIELDS if summary.fields[name]]
    yield f"Changed fields: {', '.join(changed) or 'none'}"
    yield from _matrix_lines(replay)
    yield from _deadline_lines(replay)
    yield from _rule_lines(replay)
    yield ""
    yield f"Changed messages ({summary.changed}):" if summary.changed else "No message changes."
    for row in replay.changed:
        yield from _message_lines(row)
    if replay.not_replayable:
        yield ""
        yield f"Not replayable ({summary.not_replayable}): the customer was erased"
        for row in replay.not_replayable:
            yield (f"  {_minute(row.at)}  {_refs(row)}  rule {row.blocked_by!r} tests the text")


def _matrix_lines(replay: Replay) -> Iterator[str]:
    for name in MATRICES:
        moves = "; ".join(f"{old or '—'} → {new or '—'}: {count}"
                          for old, new, count in replay.summary.moved(name))
        yield f"{name.capitalize()}: {moves or 'no change'}"


def _deadline_lines(replay: Replay) -> Iterator[str]:
    for key, stats in replay.summary.as_dict()["deadlines"].items():
        label = key.removesuffix("_due").replace("_", " ").capitalize() + " deadline"
        if not stats["moved"]:
            yield f"{label}: no move"
            continue
        yield (f"{label}: {stats['moved']} moved ({stats['earlier']} earlier, "
               f"{stats['later']} later); median {_shift(stats['median_seconds'])}, "
               f"largest {_shift(stats['max_seconds'])}")


def _rule_lines(replay: Replay) -> Iterator[str]:
    rules = replay.summary.rules
    for kind, verb in (("gained", "gain"), ("lost", "lose")):
        counts = ", ".join(f"{name} {count}" for name, count in sorted(rules[kind].items()))
        yield f"Rules that {verb} matches: {counts or 'none'}"
    blocked = replay.summary.blocked_by
    if blocked:
        yield "Not replayable, by rule: " + ", ".join(
            f"{name} {count}" for name, count in sorted(blocked.items()))


def _message_lines(row: ReplayedMessage) -> Iterator[str]:
    yield f"  {_minute(row.at)}  {_refs(row)}  {row.effect}  \"{row.snippet}\""
    for name in row.changed:
        yield f"      {describe_change(name, row.old, row.new)}"


def replay_csv(replay: Replay) -> str:
    """One row per changed message: when, who, the snippet, the changed fields, then each
    SHOWN value before and after (lists joined by `;`)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["at", "customer", "task", "snippet", "effect", "changed",
                     *(f"{side}_{name}" for name in SHOWN for side in ("old", "new"))])
    for row in replay.changed:
        writer.writerow([row.at.isoformat(), row.customer or "", row.task or "", row.snippet,
                         row.effect, ";".join(row.changed),
                         *(_cell(values.get(name)) for name in SHOWN
                           for values in (row.old, row.new))])
    return out.getvalue()


def _cell(value: object) -> str:
    if isinstance(value, list):
        return ";".join(str(item) for item in value)
    return "" if value is None else str(value)


def _refs(row: ReplayedMessage) -> str:
    return " ".join(ref for ref in (row.customer, row.task) if ref) or "—"


def _minute(at: datetime) -> str:
    return at.strftime("%Y-%m-%d %H:%M")


def _share(count: int, total: int) -> str:
    return f"{100 * count / total:.1f}%" if total else "0%"


def _shift(seconds: float) -> str:
    return ("-" if seconds < 0 else "+") + format_duration(timedelta(seconds=abs(seconds)))
