"""Verifying the audit trail, and anchoring it.

Each task's events form a hash chain (`store.events`); verification walks every chain and
names what broke it. An anchor records, every few minutes, the last event of each chain that
grew, in a chain of its own: the last events of a chain have no successor to vouch for them,
the anchor does. Chains that retention purged (a verified `retention` event of the system
chain lists their tasks) may be gone; no other may.

Verification reads the details as stored (never decoded), so that it holds even for events
whose data can no longer be read.
"""

import hmac
import json
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from itertools import groupby
from typing import Any

from sqlalchemy import Row, Text, func, select, type_coerce
from sqlalchemy.orm import Session

from store.events import SYSTEM_CHAIN, Audit, chain_key, event_hash, keyed_hash, lock_chain
from store.models import AuditAnchor, TaskEvent
from store.types import decode_details

ANCHOR_CHAIN = -1  # the anchors' lock (`store.events.lock_chain`); task ids are positive
READ_BATCH = 2000  # events fetched at a time while verifying


@dataclass(frozen=True)
class Problem:
    task_id: int | None  # None: the system chain (or an anchor)
    event_id: int | None  # None: an anchor's own problem
    kind: str  # edited | deleted | reordered | forged | anchor
    detail: str

    def __str__(self) -> str:
        where = "anchors" if self.event_id is None else (
            f"{chain_key(self.task_id)} event {self.event_id}")
        return f"{where}: {self.kind} ({self.detail})"


@dataclass
class AuditReport:
    ok: bool = True
    events: int = 0
    chains: int = 0
    anchors: int = 0
    legacy: int = 0  # events written before the chain existed: not covered
    problems: list[Problem] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "problems": [{**asdict(p), "chain": chain_key(p.task_id),
                                              "text": str(p)} for p in self.problems]}


@dataclass
class _Anchored:
    """What the anchors say: each chain's anchored heads (event id -> hash)."""

    heads: dict[str, dict[int, str | None]] = field(default_factory=dict)
    purged: set[str] = field(default_factory=set)  # chains retention deleted


def write_anchor(session: Session, *, now: datetime) -> AuditAnchor | None:
    """Anchors the heads of the chains that grew since the last anchor; returns the anchor,
    or None when no event was appended since."""
    lock_chain(session, ANCHOR_CHAIN)  # two anchors written at once would fork their chain
    last = session.scalar(select(AuditAnchor).order_by(AuditAnchor.id.desc()).limit(1))
    heads = _heads_since(session, _covered(last))
    if not heads:
        return None
    anchor = AuditAnchor(at=now, heads=heads, prev_hash=last.hash if last else None,
                         event_count=session.scalar(select(func.count(TaskEvent.id))))
    anchor.hash = _anchor_hash(anchor)
    session.add(anchor)
    session.flush()
    return anchor


def needs_anchor(session: Session, *, before: datetime) -> bool:
    """Whether events were appended since the last anchor and it was written before
    `before` (or there is none)."""
    last = session.scalar(select(AuditAnchor).order_by(AuditAnchor.id.desc()).limit(1))
    if last is not None and last.at >= before:
        return False
    newest = session.scalar(select(func.max(TaskEvent.id)))
    return newest is not None and newest > _covered(last)


def last_verified_at(session: Session) -> datetime | None:
    """When the trail was last verified (its `audit_verified` event), or None."""
    query = select(func.max(TaskEvent.at)).where(TaskEvent.action == Audit.AUDIT_VERIFIED)
    return session.scalar(query)


def verify_audit(session: Session) -> AuditReport:
    """Walks every chain and every anchor; the report lists each problem, earliest event
    first. Raises KeysError when no keys are configured."""
    report = AuditReport()
    anchored = _check_anchors(session, report)  # first: its heads are then all visible below
    missing: list[Problem] = []
    for task_id, rows in groupby(_stored_events(session), key=lambda row: row.task_id):
        report.chains += 1
        missing += _check_chain(task_id, list(rows), anchored, report)
    for key, heads in anchored.heads.items():  # chains with no event left
        task_id = None if key == SYSTEM_CHAIN else int(key.removeprefix("T-"))
        missing.append(Problem(task_id, max(heads), "deleted", "anchored as its chain's last "
                               "event, it is gone with its whole chain"))
    report.problems += [p for p in missing if chain_key(p.task_id) not in anchored.purged]
    report.problems.sort(key=lambda p: (p.event_id is not None, p.event_id or 0))
    report.ok = not report.problems
    return report


def _stored_events(session: Session) -> Iterator[Row]:
    query = (select(TaskEvent.id, TaskEvent.task_id, TaskEvent.actor, TaskEvent.action,
                    TaskEvent.from_status, TaskEvent.to_status,
                    type_coerce(TaskEvent.details, Text).label("details_text"), TaskEvent.at,
                    TaskEvent.prev_hash, TaskEvent.hash)
             .order_by(TaskEvent.task_id, TaskEvent.id)
             .execution_options(yield_per=READ_BATCH))
    return iter(session.execute(query))


def _check_chain(task_id: int | None, rows: list[Row], anchored: _Anchored,
                 report: AuditReport) -> list[Problem]:
    """Checks one chain (its rows by id) into `report`; returns the anchored heads it lacks."""
    report.events += len(rows)
    legacy = next((i for i, row in enumerate(rows) if row.hash is not None), len(rows))
    report.legacy += legacy
    stored = {row.id for row in rows}
    rows = rows[legacy:]
    heads = anchored.heads.pop(chain_key(task_id), {})
    walk = _Walk(rows, vouched={row.prev_hash for row in rows} | set(heads.values()),
                 anchored_to=max(heads, default=0))
    expected = None
    for index, row in enumerate(rows):
        problem = walk.check(index, row, expected)
        if problem is not None:
            report.problems.append(Problem(task_id, row.id, *problem))
        elif task_id is None and row.action == Audit.RETENTION:
            purged = decode_details(row.details_text).get("purged_tasks") or []
            anchored.purged.update(chain_key(int(purged_id)) for purged_id in purged)
        expected = row.hash
    return [Problem(task_id, event_id, "deleted", "anchored as its chain's last event, it is "
                    "gone") for event_id in heads.keys() - stored]


class _Walk:
    """One chain's hashed rows, and what tells a tampering from another."""

    def __init__(self, rows: list[Row], *, vouched: set[str | None], anchored_to: int) -> None:
        self.rows = rows
        self.position = {row.hash: index for index, row in enumerate(rows)}
        self.vouched = vouched  # hashes a later event or an anchor points to
        self.anchored_to = anchored_to  # the chain's last anchored event id

    def check(self, index: int, row: Row, expected: str | None) -> tuple[str, str] | None:
        """(kind, detail) of what is wrong with the row at `index`, or None."""
        if row.hash is None:
            return "edited", "its hash was removed"
        if not hmac.compare_digest(_recomputed(row), row.hash):
            if row.hash in self.vouched or row.id <= self.anchored_to:
                return "edited", "the hash does not match its content"
            return "forged", ("its hash was not made with the audit key and nothing vouches "
                              "for it: a row added outside opsbot")
        if row.prev_hash == expected:
            return None
        before = self.position.get(row.prev_hash) if row.prev_hash is not None else -1
        if before is None:
            return "deleted", "the event before it in its chain is missing"
        if before == -1:
            return "reordered", "it is its chain's first event but is stored after others"
        stored = "after" if before > index else "before"
        return "reordered", f"it follows event {self.rows[before].id}, stored {stored} it"


def _recomputed(row: Row) -> str:
    return event_hash(task_id=row.task_id, actor=row.actor, action=row.action,
                      from_status=row.from_status, to_status=row.to_status,
                      details_text=row.details_text, at=row.at, prev_hash=row.prev_hash)


def _check_anchors(session: Session, report: AuditReport) -> _Anchored:
    anchored, expected = _Anchored(), None
    for anchor in session.scalars(select(AuditAnchor).order_by(AuditAnchor.id)):
        report.anchors += 1
        if not hmac.compare_digest(_anchor_hash(anchor), anchor.hash):
            report.problems.append(Problem(None, None, "anchor", f"anchor {anchor.id} does "
                                           "not match its content"))
        elif anchor.prev_hash != expected:
            report.problems.append(Problem(None, None, "anchor", f"the anchor before anchor "
                                           f"{anchor.id} is missing or moved"))
        for key, (event_id, hash_) in anchor.heads.items():
            anchored.heads.setdefault(key, {})[int(event_id)] = hash_
        expected = anchor.hash
    return anchored


def _anchor_hash(anchor: AuditAnchor) -> str:
    at_iso = anchor.at.astimezone(UTC).isoformat(timespec="microseconds")
    return keyed_hash(json.dumps([at_iso, anchor.heads, anchor.event_count, anchor.prev_hash],
                                 sort_keys=True, separators=(",", ":"), ensure_ascii=False))


def _covered(anchor: AuditAnchor | None) -> int:
    """The id of the newest event `anchor` covers (0 for no anchor)."""
    if anchor is None:
        return 0
    return max(int(event_id) for event_id, _ in anchor.heads.values())


def _heads_since(session: Session, after: int) -> dict[str, list[Any]]:
    newest = (select(func.max(TaskEvent.id)).where(TaskEvent.id > after)
              .group_by(TaskEvent.task_id))
    query = select(TaskEvent.task_id, TaskEvent.id, TaskEvent.hash).where(
        TaskEvent.id.in_(newest))
    return {chain_key(task_id): [event_id, hash_] for task_id, event_id, hash_ in
            session.execute(query)}
