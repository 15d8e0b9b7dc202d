"""The channel-neutral notification: a title, fields and buttons that each adapter renders.

A notification is stored as a plain dict in the outbox payload (`as_dict` / `from_dict`), so
the worker that delivers it needs neither the task nor the rules.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum
from typing import Any

from notifiers.texts import shorten
from rules import RulesConfig
from store.contacts import reply_window_closes
from store.models import Contact, Task, TaskStatus

S = TaskStatus


class NotificationKind(StrEnum):
    ASSIGNED = "assigned"
    OFFERED = "offered"  # accept or decline
    FOLLOW_UP = "follow_up"  # the customer wrote again on your task
    REMINDER = "reminder"
    BREACH = "breach"  # SLA breached / escalated: to the supervisor
    REASSIGNED_AWAY = "reassigned_away"
    DIGEST = "digest"  # your open tasks
    CARD_UPDATE = "card_update"  # edits a card already delivered (not built here)
    CUSTOMER_REFUSED = "customer_refused"  # WhatsApp refused a message to the customer for good
    LATE_SUMMARY = "late_summary"  # the team's tasks that arrived late: to the supervisor
    WHATSAPP_ERROR = "whatsapp_error"  # Meta reported an account-level error: to the admins
    AUDIT_BROKEN = "audit_broken"  # the daily verification found the audit trail altered
    WAITING = "waiting"  # nobody available: to the team channel (else supervisor), to claim


@dataclass(frozen=True)
class Button:
    """A button: `verb` is a command verb applied to `ref` (`accept` + `T-12`)."""

    verb: str
    label: str
    style: str | None = None  # "primary" | "danger" | None


@dataclass(frozen=True)
class MediaRef:
    """The customer's media a card mentions: the inbound message that carries it, the words
    of its link (`image`, `document: factura.pdf`) and, once delivery signed one, its URL."""

    message_id: int
    label: str
    url: str | None = None  # never stored: signed when the card is sent, it expires


MEDIA_FIELD = "Media"


@dataclass(frozen=True)
class Notification:
    kind: str
    title: str
    ref: str | None = None
    fields: tuple[tuple[str, str], ...] = ()
    text: str | None = None
    buttons: tuple[Button, ...] = ()
    status_line: str | None = None  # "Accepted by Ana García at 10:42"
    media: MediaRef | None = None  # the customer's media, linked from the Media field

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "title": self.title,
            "ref": self.ref,
            "fields": [list(pair) for pair in self.fields],
            "text": self.text,
            "buttons": [[b.verb, b.label, b.style] for b in self.buttons],
            "status_line": self.status_line,
            **({"media": [self.media.message_id, self.media.label]} if self.media else {}),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Notification:
        return cls(
            kind=data["kind"],
            title=data["title"],
            ref=data.get("ref"),
            fields=tuple((str(k), str(v)) for k, v in data.get("fields") or ()),
            text=data.get("text"),
            buttons=tuple(Button(*item) for item in data.get("buttons") or ()),
            status_line=data.get("status_line"),
            media=MediaRef(int(data["media"][0]), str(data["media"][1]))
            if data.get("media") else None,
        )

    def with_media_link(self, url: str) -> Notification:
        """This card with its Media field linked to `url` (unchanged when it has no media)."""
        return replace(self, media=replace(self.media, url=url)) if self.media else self

    def linked_fields(self) -> tuple[tuple[str, str, str | None], ...]:
        """(label, value, url) of each field: the Media field, once linked, reads as the
        media's label with its URL; every other field has no URL."""
        media = self.media
        return tuple(
            (label, media.label, media.url) if label == MEDIA_FIELD and media and media.url
            else (label, value, None)
            for label, value in self.fields)

    @property
    def plain_text(self) -> str:
        """One line for notifications previews and clients that show no cards."""
        return f"{self.title} — {self.status_line}" if self.status_line else self.title


_ACCEPT = Button("accept", "Accept", "primary")
_DECLINE = Button("decline", "Decline", "danger")
_START = Button("start", "Start")
_WAIT = Button("wait", "Wait for customer")
_CLOSE = Button("close", "Close")
_CLAIM = Button("accept", "Claim", "primary")  # accepting an unassigned task claims it

_BUTTONS_BY_STATUS: dict[str, tuple[Button, ...]] = {
    S.NEW: (_ACCEPT,),
    S.ASSIGNED: (_ACCEPT, _DECLINE),
    S.ACCEPTED: (_START, _CLOSE),
    S.IN_PROGRESS: (_WAIT, _CLOSE),
    S.WAITING_CUSTOMER: (_START, _CLOSE),
}


def buttons_for(status: str) -> tuple[Button, ...]:
    """The buttons a task card shows in `status` (none once resolved or closed)."""
    return _BUTTONS_BY_STATUS.get(status, ())


_TITLES = {
    NotificationKind.ASSIGNED: "New task {ref}: {title}",
    NotificationKind.OFFERED: "Task offered to you {ref}: {title}",
    NotificationKind.FOLLOW_UP: "The customer wrote on {ref}: {title}",
    NotificationKind.REMINDER: "Reminder {ref}: {title}",
    NotificationKind.BREACH: "SLA breached on {ref}: {title}",
    NotificationKind.REASSIGNED_AWAY: "{ref} was reassigned: {title}",
    NotificationKind.WAITING: "Waiting for the team {ref}: {title}",
    NotificationKind.CUSTOMER_REFUSED: "WhatsApp refused the message to the customer of {ref}: "
                                       "{title}",
}


MESSAGE_LIMIT = 1000  # what a card quotes of the customer's message: enough to act on


def build_notification(
    kind: NotificationKind | str,
    *,
    config: RulesConfig,
    task: Task | None,
    details: dict[str, Any] | None = None,
) -> Notification:
    """The notification of `kind` about `task` (None for a digest, a late summary, a
    WhatsApp error or a broken audit trail).

    `details` adds context: text (follow-up message), customer_text/media/media_file/
    media_message_id (the customer's latest message, quoted on the other task cards), why
    (the routing line), percent/deadline (reminder), step (breach), agent (reassigned to),
    tasks (digest: list of task dicts), refs/team/oldest_seconds (late summary). Raises
    ValueError for an unknown kind.
    """
    kind = NotificationKind(kind)
    details = details or {}
    if kind is NotificationKind.DIGEST:
        return _digest(details)
    if kind is NotificationKind.LATE_SUMMARY:
        return _late_summary(details)
    if kind is NotificationKind.WHATSAPP_ERROR:
        return _whatsapp_error(details)
    if kind is NotificationKind.AUDIT_BROKEN:
        return _audit_broken(details)
    if task is None:
        raise ValueError(f"a {kind.value} notification needs a task")
    title = _TITLES[kind].format(ref=task.ref, title=task.title)
    fields = task_fields(task, config) + _context_fields(details) + _extra_fields(
        kind, details, config)
    buttons: tuple[Button, ...] = ()
    if kind in (NotificationKind.ASSIGNED, NotificationKind.OFFERED):
        buttons = (_ACCEPT, _DECLINE)
    elif kind in (NotificationKind.FOLLOW_UP, NotificationKind.REMINDER):
        buttons = buttons_for(task.status)
    elif kind is NotificationKind.WAITING:
        buttons = (_CLAIM,)
    return Notification(kind.value, title, task.ref, fields, _card_text(kind, details), buttons,
                        media=_media_ref(details))


def _media_ref(details: dict[str, Any]) -> MediaRef | None:
    """The card's media, when the customer's message had some and its message is known."""
    if not details.get("media") or details.get("media_message_id") is None:
        return None
    name = details.get("media_file")
    label = f"{details['media']}: {name}" if name else str(details["media"])
    return MediaRef(int(details["media_message_id"]), label)


def _card_text(kind: NotificationKind, details: dict[str, Any]) -> str | None:
    """The quoted text: the follow-up itself, a note, else what the customer wrote."""
    if kind is NotificationKind.FOLLOW_UP:
        return details.get("text")
    if details.get("note"):
        return details["note"]
    customer = details.get("customer_text")
    return shorten(str(customer), MESSAGE_LIMIT) if customer else None


def _context_fields(details: dict[str, Any]) -> tuple[tuple[str, str], ...]:
    """The customer's media (kind and file name) and why the card went to this agent."""
    pairs = []
    if details.get("media"):
        name = details.get("media_file")
        pairs.append((MEDIA_FIELD, f"{details['media']}: {name}" if name else
                      f"{details['media']} (open it in the WhatsApp conversation)"))
    if details.get("why"):
        pairs.append(("Why you", str(details["why"])))
    return tuple(pairs)


def task_fields(task: Task, config: RulesConfig, *, now: datetime | None = None,
                ) -> tuple[tuple[str, str], ...]:
    """The fields every task card shows; with `now`, the reply window says whether it closed."""
    contact = task.contact
    customer = (contact.name or contact.wa_id or "-") if contact is not None else "-"
    pairs = [
        ("Customer", customer),
        *_crm_field(contact),
        ("Priority", task.priority),
        ("Team", task.team or "-"),
        ("Status", task.status.replace("_", " ")),
    ]
    if task.first_response_due and task.first_response_at is None:
        pairs.append(("First response due", local_time(task.first_response_due, config)))
    elif task.resolution_due:
        pairs.append(("Resolution due", local_time(task.resolution_due, config)))
    if contact is not None and contact.last_inbound_at is not None:
        pairs.append(("Reply window", window_text(contact, config, now=now)))
    if task.late_summary_at is not None:
        pairs.append(("SLA", "breached: arrived late"))
    if contact is not None and contact.identity_changed_at is not None:
        when = local_time(contact.identity_changed_at, config)
        pairs.append(("WhatsApp identity", f"changed {when}: verify before sharing personal data"))
    return tuple(pairs)


def _crm_field(contact: Contact | None) -> tuple[tuple[str, str], ...]:
    if contact is None:
        return ()
    tags = ", ".join(contact.tags or ())
    status = contact.crm_status or "lead"
    return (("CRM", f"{status} · tags: {tags}" if tags else status),)


def window_text(contact: Contact, config: RulesConfig, *, now: datetime | None = None) -> str:
    """The customer-service window as an agent reads it: `closes Tue 24 Nov 14:05`, or, once
    `now` is past it, how a reply goes out (the approved template, or not at all)."""
    closes = reply_window_closes(contact)
    if closes is None:
        return "closed: the customer never wrote"
    if now is None or now < closes:
        return f"closes {local_time(closes, config)}"
    template = config.out_of_window_template
    how = (f"replies go as the template {template.name}" if template is not None
           else "no out_of_window_template: replies are refused")
    return f"closed {local_time(closes, config)}: {how}"


def _extra_fields(kind: NotificationKind, details: dict, config: RulesConfig) -> tuple:
    pairs = []
    if kind is NotificationKind.REMINDER and details.get("percent") is not None:
        deadline = str(details.get("deadline") or details.get("kind") or "deadline")
        pairs.append(("Elapsed", f"{details['percent']}% of {deadline.replace('_', ' ')}"))
    if kind is NotificationKind.BREACH:
        deadline = str(details.get("deadline") or "deadline").replace("_", " ")
        pairs.append(("Breached", deadline))
        if details.get("step"):
            pairs.append(("Escalation", str(details["step"]).replace("_", " ")))
    label = {NotificationKind.BREACH: "Assignee", NotificationKind.REASSIGNED_AWAY: "Now with"}
    if kind in label and details.get("agent"):
        agent = config.agent(str(details["agent"]))
        pairs.append((label[kind], agent.name if agent else str(details["agent"])))
    return tuple(pairs)


def _digest(details: dict[str, Any]) -> Notification:
    tasks = details.get("tasks") or []
    lines = [f"{t['ref']} · {t['status'].replace('_', ' ')} · {t['title']}" for t in tasks]
    return Notification(
        NotificationKind.DIGEST.value,
        f"Your open tasks ({len(tasks)})",
        text="\n".join(lines) or "Nothing open. Well done!",
    )


LATE_REFS_SHOWN = 50  # a summary names this many tasks, then counts the rest


def _late_summary(details: dict[str, Any]) -> Notification:
    refs = [str(ref) for ref in details.get("refs") or ()]
    shown = ", ".join(refs[:LATE_REFS_SHOWN])
    if len(refs) > LATE_REFS_SHOWN:
        shown += f" and {len(refs) - LATE_REFS_SHOWN} more"
    noun = "message" if len(refs) == 1 else "messages"
    title = f"{len(refs)} {noun} arrived late"
    if details.get("oldest_seconds") is not None:
        title += f" (oldest sent {_ago(float(details['oldest_seconds']))} ago)"
    team = f"Team {details['team']}: " if details.get("team") else ""
    text = (f"{team}{shown}. Their deadlines had passed before they reached us: each counts "
            "as an SLA breach (arrived late) and was routed as usual, without escalations.")
    return Notification(NotificationKind.LATE_SUMMARY.value, title, text=text)


def _whatsapp_error(details: dict[str, Any]) -> Notification:
    title = f"WhatsApp reported error {details.get('code')}: {details.get('title') or ''}"
    text = (f"{details.get('details') or ''}\nCustomers' messages or our replies may be "
            "delayed or lost while it lasts; see `opsbot report` and Meta's error codes.").strip()
    return Notification(NotificationKind.WHATSAPP_ERROR.value, title.strip(), text=text)


def _audit_broken(details: dict[str, Any]) -> Notification:
    title = "The audit trail was altered"
    text = (f"The daily verification found {details.get('problems')} problem(s); the first: "
            f"{details.get('first')}.\nRun `opsbot audit verify` and compare with your backups: "
            "someone with access to the database changed, removed or added audit events.")
    return Notification(NotificationKind.AUDIT_BROKEN.value, title, text=text)


_AGO_UNITS = (("day", 86400), ("hour", 3600), ("minute", 60))


def _ago(seconds: float) -> str:
    """`seconds` as people say it: `2 days`, `1 hour`, `5 minutes`, `seconds`."""
    for unit, size in _AGO_UNITS:
        if seconds >= size:
            count = round(seconds / size)
            return f"{count} {unit}" + ("s" if count > 1 else "")
    return "seconds"


def with_outcome(card: Notification, *, line: str, status: str) -> Notification:
    """`card` as it reads after an action: a status line and the buttons of `status`."""
    fields = tuple(
        (label, status.replace("_", " ") if label == "Status" else value)
        for label, value in card.fields
    )
    return replace(card, fields=fields, status_line=line, buttons=buttons_for(status))


def local_time(moment: datetime, config: RulesConfig) -> str:
    """`moment` in the business timezone, as `Tue 24 Nov 10:42`."""
    return moment.astimezone(config.tz).strftime("%a %d %b %H:%M")


def clock_time(moment: datetime, config: RulesConfig) -> str:
    """`moment` in the business timezone, as `10:42`."""
    return moment.astimezone(config.tz).strftime("%H:%M")
