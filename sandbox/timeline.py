"""A readable, time-ordered account of a run: what customers wrote, what opsbot decided and
why, and what every agent and customer received (from the fakes' recordings)."""

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select

from rules import RulesConfig
from sandbox.graph import FakeGraph
from sandbox.server import Recorded
from sandbox.slack import FakeSlack
from sandbox.telegram import FakeTelegram
from store.db import Database
from store.models import Contact, Direction, Message, TaskEvent

_QUIET_ACTIONS = {"message"}  # shown as the customer's own line instead


@dataclass(frozen=True, order=True)
class Entry:
    at: datetime
    who: str
    text: str

    def render(self) -> str:
        return f"{self.at:%H:%M:%S}.{self.at.microsecond // 100000}  {self.who:<22} {self.text}"


def build_timeline(
    db: Database, config: RulesConfig, graph: FakeGraph, slack: FakeSlack, telegram: FakeTelegram
) -> list[Entry]:
    """Every entry of the run, oldest first."""
    names = _recipient_names(config, slack)
    entries = _database_entries(db)
    entries += [_graph_entry(r) for r in graph.calls("messages") if _sent(r) and r.json]
    entries += [_slack_entry(r, names) for r in slack.requests if _slack_visible(r)]
    entries += [_telegram_entry(r, names) for r in telegram.requests if _telegram_visible(r)]
    return sorted(e for e in entries if e is not None)


def _database_entries(db: Database) -> list[Entry]:
    with db.transaction() as session:
        inbound = session.execute(
            select(Message, Contact)
            .join(Contact, Message.contact_id == Contact.id)
            .where(Message.direction == Direction.INBOUND)
        ).all()
        events = list(session.scalars(select(TaskEvent).order_by(TaskEvent.id)))
    entries = [
        Entry(m.created_at, f"WhatsApp ← {c.name}", f"«{_short(m.text or m.type)}»")
        for m, c in inbound
    ]
    entries += [_event_entry(e) for e in events if e.action not in _QUIET_ACTIONS]
    return entries


def _event_entry(event: TaskEvent) -> Entry:
    ref = f"T-{event.task_id}" if event.task_id else "—"
    details = event.details or {}
    move = f" ({event.from_status or ''} → {event.to_status})" if event.to_status else ""
    explain = _explain(event.action, details)
    return Entry(event.at, f"opsbot {ref}", f"{event.action} by {event.actor}{move}{explain}")


def _explain(action: str, details: dict[str, Any]) -> str:
    if action == "created":
        matched = details.get("matched", [])
        reasons = "; ".join(f"{r['rule']}: {', '.join(r['reasons']) or 'always'}" for r in matched)
        return f" — rules matched: {reasons}" if reasons else ""
    if action in ("routed", "unrouted"):
        lines = [details.get("summary", "")]
        lines += [f"{c.get('agent')}: {c.get('reason')}" for c in details.get("candidates", [])]
        return " — " + "; ".join(line for line in lines if line)
    keys = ("reason", "text", "step", "percent", "kind", "rating")
    shown = {k: v for k, v in details.items() if k in keys}
    return f" — {shown}" if shown else ""


def _graph_entry(record: Recorded) -> Entry:
    body = record.json or {}
    text = (body.get("text") or {}).get("body") or body.get("template", {}).get("name", "")
    kind = "template" if body.get("type") == "template" else body.get("type", "")
    return Entry(record.at, f"WhatsApp → {body.get('to', '?')}", f"{kind}: «{_short(text)}»")


def _slack_entry(record: Recorded, names: dict[str, str]) -> Entry:
    params = record.params
    channel = str(params.get("channel") or "the command's reply")
    verb = {"chat.update": "card updated", "chat.postEphemeral": "ephemeral"}.get(
        record.name, "message"
    )
    buttons = _slack_buttons(params.get("blocks"))
    text = _short(params.get("text") or _slack_text(params.get("blocks")))
    return Entry(record.at, f"Slack → {names.get(channel, channel)}", f"{verb}: «{text}»{buttons}")


def _telegram_entry(record: Recorded, names: dict[str, str]) -> Entry:
    params = record.params
    chat = str(params.get("chat_id"))
    verb = "card updated" if record.name.startswith("edit") else "message"
    keyboard = (params.get("reply_markup") or {}).get("inline_keyboard") or []
    buttons = "".join(f" [{b.get('text')}]" for row in keyboard for b in row)
    text = _short(_strip_html(str(params.get("text") or "")))
    return Entry(record.at, f"Telegram → {names.get(chat, chat)}", f"{verb}: «{text}»{buttons}")


def _recipient_names(config: RulesConfig, slack: FakeSlack) -> dict[str, str]:
    names: dict[str, str] = {}
    for agent in config.agents:
        if agent.slack:
            names[slack.dm_channel(agent.slack)] = names[agent.slack] = agent.name
        if agent.telegram:
            names[str(agent.telegram)] = agent.name
    return names


def _sent(record: Recorded) -> bool:
    return record.method == "POST" and record.status == 200 and "type" in (record.json or {})


def _slack_visible(record: Recorded) -> bool:
    visible = ("chat.postMessage", "chat.update", "chat.postEphemeral")
    return record.status == 200 and (record.name in visible or record.path.startswith("/response"))


def _telegram_visible(record: Recorded) -> bool:
    return record.status == 200 and record.name in ("sendMessage", "editMessageText")


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


def _strip_html(text: str) -> str:
    return re.sub(r"<[^>]+>", "", text)


def _short(text: str, limit: int = 110) -> str:
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"
