"""A readable account of a run, in the order things happened: what customers wrote, what
opsbot decided and why, and what every agent and customer received (from the fakes'
recordings). `streaming` prints it while the run goes on.

The order comes from sub-second instants: the audit's `at` (and its id within one instant),
when a customer's webhook reached opsbot, when a fake received a request. WhatsApp stamps
messages to the whole second, so by its stamp a rating would come before the question it
answers.
"""

import html
import re
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from functools import partial
from typing import Any

from sqlalchemy import and_, select

from rules import RulesConfig
from sandbox.graph import FakeGraph
from sandbox.server import FakeServer, Recorded
from sandbox.slack import FakeSlack
from sandbox.telegram import FakeTelegram
from store.db import Database
from store.models import Contact, Direction, InboundEvent, Message, TaskEvent

WHO_WIDTH = 24
# How long an entry waits before it is printed: a worker's transaction commits (and a
# customer's message is applied) a moment after the instant it records.
SETTLE = timedelta(seconds=1.5)
_QUIET_ACTIONS = {"message"}  # shown as the customer's own line instead
_VERBS = {
    "assign": "assigned", "reassign": "reassigned", "accept": "accepted",
    "decline": "declined", "start": "started", "wait": "waiting for the customer",
    "resume": "resumed", "resolve": "resolved", "close": "closed", "reopen": "reopened",
    "unrouted": "not routed", "reply": "replied to the customer", "note": "note added",
    "reminder": "reminder sent", "offer_expired": "offer expired", "rated": "rated",
    "delivery_failed": "delivery failed", "denied": "refused",
}


@dataclass(frozen=True)
class Entry:
    """One event of the run; `text` may span lines (a card in full). `seq` orders the
    entries of one instant from one source (the audit's ids)."""

    at: datetime
    who: str
    text: str
    seq: int = 0

    def render(self, tz: tzinfo = UTC) -> str:
        at = self.at.astimezone(tz)
        head = f"{at:%H:%M:%S}.{at.microsecond // 1000:03d}  {self.who:<{WHO_WIDTH}} "
        first, *more = self.text.split("\n")
        return "\n".join([head + first, *(" " * len(head) + line for line in more)])


Source = Callable[[], list[Entry]]  # each call returns the entries new since the last one


class Timeline:
    """Entries from `sources` and from `add`; `take` hands each out once, oldest first."""

    def __init__(self, sources: Sequence[Source]) -> None:
        self._sources = list(sources)
        self._waiting: list[Entry] = []
        self._lock = threading.Lock()

    def add(self, entry: Entry) -> None:
        with self._lock:
            self._waiting.append(entry)

    def take(self, until: datetime | None = None) -> list[Entry]:
        """The entries not handed out yet of instants up to `until` (all when None)."""
        found = [entry for source in self._sources for entry in source()]
        with self._lock:
            entries = sorted(self._waiting + found, key=lambda e: (e.at, e.seq))
            cut = len(entries) if until is None else sum(e.at <= until for e in entries)
            ready, self._waiting = entries[:cut], entries[cut:]
        return ready


@contextmanager
def streaming(timeline: Timeline, echo: Callable[[str], None], *, tz: tzinfo = UTC,
              every: float = 0.25, settle: timedelta = SETTLE,
              clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> Iterator[Timeline]:
    """Prints `timeline` through `echo` while the block runs: every `every` seconds, the
    entries older than `settle`; the rest when the block ends."""
    stop = threading.Event()

    def show(until: datetime | None) -> None:
        for entry in timeline.take(until):
            echo(entry.render(tz))

    def follow() -> None:
        while not stop.wait(every):
            show(clock() - settle)

    thread = threading.Thread(target=follow, name="timeline", daemon=True)
    thread.start()
    try:
        yield timeline
    finally:
        stop.set()
        thread.join()
        show(None)


def sandbox_timeline(
    db: Database, config: RulesConfig, graph: FakeGraph, slack: FakeSlack, telegram: FakeTelegram
) -> Timeline:
    """The timeline of a sandbox run: opsbot's database and the three fakes' recordings."""
    names = _recipient_names(config, slack)
    return Timeline([
        _AuditTrail(db, config), _CustomerMessages(db),
        _Recordings(graph, _graph_entry),
        _Recordings(slack, partial(_slack_entry, names=names)),
        _Recordings(telegram, partial(_telegram_entry, names=names)),
    ])


def build_timeline(
    db: Database, config: RulesConfig, graph: FakeGraph, slack: FakeSlack, telegram: FakeTelegram
) -> list[Entry]:
    """Every entry of the run so far, oldest first."""
    return sandbox_timeline(db, config, graph, slack, telegram).take()


# sources ----------------------------------------------------------------------------------


class _AuditTrail:
    """Audit events after the last one seen (SQLite has one writer: ids commit in order)."""

    def __init__(self, db: Database, config: RulesConfig) -> None:
        self.db, self.config, self.last = db, config, 0

    def __call__(self) -> list[Entry]:
        with self.db.transaction(readonly=True) as session:
            events = list(session.scalars(
                select(TaskEvent).where(TaskEvent.id > self.last).order_by(TaskEvent.id)))
        self.last = events[-1].id if events else self.last
        return [_event_entry(e, self.config) for e in events if e.action not in _QUIET_ACTIONS]


class _CustomerMessages:
    """Customers' messages, at the instant their webhook reached opsbot."""

    def __init__(self, db: Database) -> None:
        self.db, self.last = db, 0

    def __call__(self) -> list[Entry]:
        webhook = and_(InboundEvent.provider == "whatsapp",
                       InboundEvent.provider_event_id == Message.provider_message_id)
        with self.db.transaction(readonly=True) as session:
            rows = session.execute(
                select(Message, Contact.name, InboundEvent.received_at)
                .join(Contact, Message.contact_id == Contact.id)
                .outerjoin(InboundEvent, webhook)
                .where(Message.direction == Direction.INBOUND, Message.id > self.last)
                .order_by(Message.id)
            ).all()
        self.last = rows[-1][0].id if rows else self.last
        return [Entry(received or m.created_at, f"WhatsApp ← {name}",
                      f"«{_flat(m.text or m.type)}»", m.id) for m, name, received in rows]


class _Recordings:
    """What a fake received after the last call, as entries (`entry` says None to skip)."""

    def __init__(self, fake: FakeServer, entry: Callable[[Recorded], Entry | None]) -> None:
        self.fake, self.entry, self.seen = fake, entry, 0

    def __call__(self) -> list[Entry]:
        new = self.fake.requests[self.seen:]
        self.seen += len(new)
        return [e for e in map(self.entry, new) if e is not None]


# audit events ---------------------------------------------------------------------------


def _event_entry(event: TaskEvent, config: RulesConfig) -> Entry:
    ref = f"T-{event.task_id}" if event.task_id else "—"
    moved = event.from_status and event.to_status and event.from_status != event.to_status
    move = f" ({event.from_status} → {event.to_status})" if moved else ""
    verb = _VERBS.get(event.action, event.action.replace("_", " "))
    explain = "; ".join(_explain(event.action, event.details or {}, config))
    text = f"{verb} by {_actor(event.actor, config)}{move}" + (f" — {explain}" if explain else "")
    return Entry(event.at, f"opsbot {ref}", text, event.id)


def _actor(label: str, config: RulesConfig) -> str:
    kind, _, key = label.partition(":")
    if kind == "agent":
        agent = config.agent(key)
        return agent.name if agent else key
    return {"system": "opsbot", "customer": "the customer"}.get(kind, label)


def _explain(action: str, details: dict[str, Any], config: RulesConfig) -> list[str]:
    if action == "created":
        matched = details.get("matched", [])
        reasons = "; ".join(f"{r['rule']}: {', '.join(r['reasons']) or 'always'}" for r in matched)
        return [f"rules matched: {reasons}"] if reasons else []
    if action in ("routed", "unrouted"):
        lines = [details.get("summary", "")]
        lines += [f"{c.get('agent')}: {c.get('reason')}" for c in details.get("candidates", [])]
        return [line for line in lines if line]
    return [phrase for phrase in (_detail_phrase(key, details, config) for key in details)
            if phrase]


def _detail_phrase(key: str, details: dict[str, Any], config: RulesConfig) -> str | None:
    value = details[key]
    if key in ("reason", "error", "title"):
        return _flat(value)
    if key == "text":
        return f"«{_flat(value)}»"
    if key == "step":
        return f"step: {str(value).replace('_', ' ')}"
    if key == "percent":
        deadline = str(details.get("kind") or details.get("deadline") or "deadline")
        return f"{value} % of the {deadline.replace('_', ' ')} time"
    if key == "rating":
        return f"{value} of 5"
    if key == "by":  # a survey's answer: a button, or a text rating
        return f"answered the survey by {value}"
    if key == "survey_comment":
        return "a comment on the survey"
    if key == "agent" and "after_seconds" in details:
        agent = config.agent(str(value))
        return f"{agent.name if agent else value} did not accept in {details['after_seconds']} s"
    return None  # ids and instants: the other lines of the timeline say them better


# what the fakes received ------------------------------------------------------------------


def _graph_entry(record: Recorded) -> Entry | None:
    body = record.json or {}
    if not (record.method == "POST" and record.status == 200 and "type" in body):
        return None
    interactive = body.get("interactive") or {}
    text = ((body.get("text") or {}).get("body") or (interactive.get("body") or {}).get("text")
            or body.get("template", {}).get("name", ""))
    kind = "template" if body.get("type") == "template" else body.get("type", "")
    return Entry(record.at, f"WhatsApp → {body.get('to', '?')}",
                 f"{kind}: «{_flat(text)}»{_choices(interactive)}")


def _choices(interactive: dict[str, Any]) -> str:
    """The reply buttons (or list rows) of an interactive message, as `[title]`s."""
    action = interactive.get("action") or {}
    titles = [(b.get("reply") or {}).get("title") for b in action.get("buttons") or []]
    titles += [row.get("title") for section in action.get("sections") or []
               for row in section.get("rows") or []]
    return "".join(f" [{title}]" for title in titles)


def _slack_entry(record: Recorded, names: dict[str, str]) -> Entry | None:
    visible = record.name in ("chat.postMessage", "chat.update", "chat.postEphemeral")
    if record.status != 200 or not (visible or record.path.startswith("/response")):
        return None
    params = record.params
    channel = str(params.get("channel") or "the command's reply")
    verb = {"chat.update": "card updated", "chat.postEphemeral": "ephemeral"}.get(
        record.name, "message"
    )
    buttons = _slack_buttons(params.get("blocks"))
    text = _flat(params.get("text") or _slack_text(params.get("blocks")))
    return Entry(record.at, f"Slack → {names.get(channel, channel)}", f"{verb}: «{text}»{buttons}")


def _telegram_entry(record: Recorded, names: dict[str, str]) -> Entry | None:
    if record.status != 200 or record.name not in ("sendMessage", "editMessageText"):
        return None
    params = record.params
    chat = str(params.get("chat_id"))
    verb = "card updated" if record.name.startswith("edit") else "message"
    keyboard = (params.get("reply_markup") or {}).get("inline_keyboard") or []
    buttons = "".join(f" [{b.get('text')}]" for row in keyboard for b in row)
    lines = [line.strip() for line in _plain(str(params.get("text") or "")).splitlines()]
    text = "\n".join(line for line in lines if line)
    return Entry(record.at, f"Telegram → {names.get(chat, chat)}", f"{verb}: «{text}»{buttons}")


def _recipient_names(config: RulesConfig, slack: FakeSlack) -> dict[str, str]:
    names: dict[str, str] = {}
    for agent in config.agents:
        if agent.slack:
            names[slack.dm_channel(agent.slack)] = names[agent.slack] = agent.name
        if agent.telegram:
            names[str(agent.telegram)] = agent.name
    return names


def _slack_buttons(blocks: Any) -> str:
    labels = [
        (element.get("text") or {}).get("text", "")
        for block in blocks or []
        for element in block.get("elements") or []
        if element.get("type") == "button"
    ]
    return "".join(f" [{label}]" for label in labels)


def _slack_text(blocks: Any) -> str:
    for block in blocks or []:
        text = block.get("text")
        if isinstance(text, dict) and text.get("text"):
            return text["text"]
    return ""


def _plain(text: str) -> str:
    """Telegram HTML as read on the screen: tags dropped, entities decoded."""
    return html.unescape(re.sub(r"<[^>]+>", "", text))


def _flat(text: Any) -> str:
    return " ".join(str(text).split())
