"""SQLAlchemy models: the tables opsbot keeps (changes need an Alembic migration)."""

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from store.crypto import SecretBytes, SecretJSON, SecretText
from store.types import StoredJSON, UTCDateTime, utcnow

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {datetime: UTCDateTime, dict[str, Any]: JSON, list[str]: JSON}


class TaskStatus(StrEnum):
    NEW = "new"
    ASSIGNED = "assigned"
    ACCEPTED = "accepted"
    IN_PROGRESS = "in_progress"
    WAITING_CUSTOMER = "waiting_customer"
    RESOLVED = "resolved"
    CLOSED = "closed"


OPEN_STATUSES = frozenset(
    {
        TaskStatus.NEW,
        TaskStatus.ASSIGNED,
        TaskStatus.ACCEPTED,
        TaskStatus.IN_PROGRESS,
        TaskStatus.WAITING_CUSTOMER,
    }
)


class Direction(StrEnum):
    INBOUND = "inbound"
    OUTBOUND = "outbound"


class EventStatus(StrEnum):
    """Processing state of a raw inbound event."""

    PENDING = "pending"
    PROCESSED = "processed"
    FAILED = "failed"


class OutboxStatus(StrEnum):
    PENDING = "pending"
    SENT = "sent"
    FAILED = "failed"


class DataKey(Base):
    """A contact's data key, wrapped by a master key (store.crypto); NULL once destroyed."""

    __tablename__ = "data_keys"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    wrapped: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    destroyed_at: Mapped[datetime | None]


class Contact(Base):
    """A customer. Their number, BSUID and name are sealed with their own data key; the
    number and BSUID are found by blind index (store.keys.blind_index)."""

    __tablename__ = "contacts"

    id: Mapped[int] = mapped_column(primary_key=True)
    data_key_id: Mapped[str | None] = mapped_column(String(32))
    wa_id_index: Mapped[str | None] = mapped_column(String(64), unique=True)
    user_id_index: Mapped[str | None] = mapped_column(String(64), unique=True)
    wa_id: Mapped[str | None] = mapped_column(SecretText)
    user_id: Mapped[str | None] = mapped_column(SecretText)
    phone: Mapped[str | None] = mapped_column(SecretText)
    name: Mapped[str | None] = mapped_column(SecretText)
    language: Mapped[str | None] = mapped_column(String(8))
    crm_status: Mapped[str] = mapped_column(String(32), default="lead")
    tags: Mapped[list[str]] = mapped_column(default=list)
    first_seen_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_inbound_at: Mapped[datetime | None]
    # The business's WhatsApp number (phone_number_id) the customer last wrote to: replies go
    # out from it.
    business_phone_id: Mapped[str | None] = mapped_column(String(32))
    # When WhatsApp last reported that the customer's identity changed (new phone, reinstall).
    identity_changed_at: Mapped[datetime | None]
    # When the customer's data was erased (GDPR): the row stays for the tasks' figures.
    erased_at: Mapped[datetime | None]
    # The customer's ids in other systems ({"hubspot": "123"}), set through the API.
    external_ids: Mapped[dict[str, Any]] = mapped_column(default=dict)
    updated_at: Mapped[datetime | None] = mapped_column(default=utcnow, onupdate=utcnow,
                                                        index=True)


class AgentState(Base):
    """Runtime state of an agent defined in rules.yaml (the definition itself lives there)."""

    __tablename__ = "agent_states"

    agent_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    away: Mapped[bool] = mapped_column(Boolean, default=False)
    away_since: Mapped[datetime | None]
    last_assigned_at: Mapped[datetime | None]


TIMERS_TO_SCHEDULE = "scheduled_generation IS NULL OR scheduled_generation != timer_generation"
ARRIVED_LATE = "late_summary_at IS NOT NULL"


class Task(Base):
    __tablename__ = "tasks"
    __table_args__ = (
        Index("ix_tasks_status_assignee", "status", "assignee_id"),
        # the few tasks whose timers are still to schedule (drains look every time)
        Index("ix_tasks_timers_to_schedule", "id", sqlite_where=text(TIMERS_TO_SCHEDULE),
              postgresql_where=text(TIMERS_TO_SCHEDULE)),
        # the few tasks that arrived late, gathered per team for one summary
        Index("ix_tasks_late_summary_at", "late_summary_at", sqlite_where=text(ARRIVED_LATE),
              postgresql_where=text(ARRIVED_LATE)),
        # the console's KPIs read the tasks created in a period and those resolved in it
        Index("ix_tasks_created_at", "created_at"),
        Index("ix_tasks_resolved_at", "resolved_at"),
        # … and those rated in it (store.kpis)
        Index("ix_tasks_last_rated_at", "last_rated_at"),
        {"sqlite_autoincrement": True},  # numbers are never reused, even after a delete
    )

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    version: Mapped[int] = mapped_column(Integer, nullable=False, default=1)
    title: Mapped[str] = mapped_column(SecretText)
    category: Mapped[str] = mapped_column(String(32))
    priority: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(24), default=TaskStatus.NEW, index=True)
    tags: Mapped[list[str]] = mapped_column(default=list)
    stage: Mapped[str | None] = mapped_column(String(64))
    team: Mapped[str | None] = mapped_column(String(64))
    skills: Mapped[list[str]] = mapped_column(default=list)
    language: Mapped[str | None] = mapped_column(String(8))
    rule: Mapped[str | None] = mapped_column(String(128))
    channel: Mapped[str] = mapped_column(String(16), default="whatsapp")
    assignee_id: Mapped[str | None] = mapped_column(String(64))
    declined_by: Mapped[list[str]] = mapped_column(default=list)
    contact_id: Mapped[int | None] = mapped_column(ForeignKey("contacts.id"), index=True)
    sla_policy: Mapped[str | None] = mapped_column(String(32))
    first_response_due: Mapped[datetime | None]
    resolution_due: Mapped[datetime | None]
    # When the current SLA period began, if not at creation: the latest reopening.
    sla_started_at: Mapped[datetime | None]
    timer_generation: Mapped[int] = mapped_column(Integer, default=0)
    # The generation whose timers are in the RQ schedule; behind timer_generation = to do.
    scheduled_generation: Mapped[int | None] = mapped_column(Integer)
    rating: Mapped[int | None]
    # Set when the task arrived late (a deadline had passed before its message reached us):
    # when its team's summary of late arrivals goes out (bot.usecases.lateness).
    late_summary_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    assigned_at: Mapped[datetime | None]
    accepted_at: Mapped[datetime | None]
    first_response_at: Mapped[datetime | None]
    waiting_since: Mapped[datetime | None]
    resolved_at: Mapped[datetime | None]
    closed_at: Mapped[datetime | None]
    # Facts of the audit trail kept on the task as its events are written (store.events
    # .note_task_fact), so that the KPIs read no events: the first automatic routing, the
    # first creation, assignment or reassignment by a person, the first acceptance; the
    # latest `rated` event and its rating (NULL when not 1-5).
    auto_routed_at: Mapped[datetime | None]
    manual_step_at: Mapped[datetime | None]
    first_accepted_at: Mapped[datetime | None]
    last_rated_at: Mapped[datetime | None]
    last_rating: Mapped[int | None]

    contact: Mapped[Contact | None] = relationship(lazy="joined")

    __mapper_args__ = {"version_id_col": version}

    @property
    def ref(self) -> str:
        return f"T-{self.id}"

    @property
    def number(self) -> int:
        return self.id

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_STATUSES


class Message(Base):
    __tablename__ = "messages"

    id: Mapped[int] = mapped_column(primary_key=True)
    provider_message_id: Mapped[str | None] = mapped_column(String(256), unique=True)
    direction: Mapped[str] = mapped_column(String(8))
    contact_id: Mapped[int | None] = mapped_column(ForeignKey("contacts.id"), index=True)
    task_id: Mapped[int | None] = mapped_column(ForeignKey("tasks.id"), index=True)
    type: Mapped[str] = mapped_column(String(24), default="text")
    text: Mapped[str | None] = mapped_column(SecretText)
    media_id: Mapped[str | None] = mapped_column(String(256))
    payload: Mapped[dict[str, Any]] = mapped_column(SecretJSON, default=dict)
    via: Mapped[str | None] = mapped_column(String(16))
    status: Mapped[str | None] = mapped_column(String(16))
    error: Mapped[str | None] = mapped_column(Text)
    sent_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class InboundEvent(Base):
    """A raw webhook delivery, committed before the provider gets its 200."""

    __tablename__ = "inbound_events"
    __table_args__ = (UniqueConstraint("provider", "provider_event_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    provider: Mapped[str] = mapped_column(String(16))
    provider_event_id: Mapped[str] = mapped_column(String(300))
    kind: Mapped[str] = mapped_column(String(16), default="message")
    # the customer's blind index (store.keys.blind_index of their wa_id or user_id)
    contact_key: Mapped[str | None] = mapped_column(String(128), index=True)
    occurred_at: Mapped[datetime | None]
    raw_body: Mapped[bytes] = mapped_column(SecretBytes)
    received_at: Mapped[datetime] = mapped_column(default=utcnow)
    status: Mapped[str] = mapped_column(String(16), default=EventStatus.PENDING, index=True)
    error: Mapped[str | None] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    dispatched_at: Mapped[datetime | None]  # when a job claimed it (see `claimed_by`)
    claimed_by: Mapped[str | None] = mapped_column(String(64))  # that job's RQ id
    processed_at: Mapped[datetime | None]


class OutboxMessage(Base):
    """A notification or customer message waiting to be (or already) delivered."""

    __tablename__ = "outbox"

    id: Mapped[int] = mapped_column(primary_key=True)
    dedupe_key: Mapped[str] = mapped_column(String(200), unique=True)
    task_id: Mapped[int | None] = mapped_column(ForeignKey("tasks.id"), index=True)
    agent_id: Mapped[str | None] = mapped_column(String(64))
    contact_id: Mapped[int | None] = mapped_column(ForeignKey("contacts.id"))
    channel: Mapped[str] = mapped_column(String(16))
    kind: Mapped[str] = mapped_column(String(24))
    payload: Mapped[dict[str, Any]] = mapped_column(SecretJSON, default=dict)
    status: Mapped[str] = mapped_column(String(16), default=OutboxStatus.PENDING, index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    next_attempt_at: Mapped[datetime | None]
    provider_message_id: Mapped[str | None] = mapped_column(String(256))
    provider_chat_id: Mapped[str | None] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    dispatched_at: Mapped[datetime | None]  # when a job claimed it (see `claimed_by`)
    claimed_by: Mapped[str | None] = mapped_column(String(64))  # that job's RQ id
    sent_at: Mapped[datetime | None]


class TaskEvent(Base):
    """Append-only audit trail: written only through `store.events.record_event`. The events
    of a task (of no task: the system chain) form a hash chain (see `store.audit`)."""

    __tablename__ = "task_events"
    # a chain's head (its last event) is one index probe: the append path reads it every time
    __table_args__ = (Index("ix_task_events_task_id_id", "task_id", "id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    task_id: Mapped[int | None] = mapped_column(ForeignKey("tasks.id"))
    actor: Mapped[str] = mapped_column(String(160))
    action: Mapped[str] = mapped_column(String(32), index=True)
    from_status: Mapped[str | None] = mapped_column(String(24))
    to_status: Mapped[str | None] = mapped_column(String(24))
    details: Mapped[dict[str, Any]] = mapped_column(StoredJSON, default=dict)  # text as hashed
    at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    prev_hash: Mapped[str | None] = mapped_column(String(64))  # NULL: first, or before 0007
    hash: Mapped[str | None] = mapped_column(String(64))


class AuditAnchor(Base):
    """A keyed summary of the audit chains' heads, written every few minutes (see
    `store.audit.write_anchor`): a chain's last events cannot vanish unseen once anchored."""

    __tablename__ = "audit_anchors"

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime]
    heads: Mapped[dict[str, Any]]  # chain key -> [last event id, its hash], changed chains
    event_count: Mapped[int]  # events in the trail when anchored
    prev_hash: Mapped[str | None] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))


class ApiKey(Base):
    """A key of the integration API (`opsbot apikeys`): only its SHA-256 is kept."""

    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))  # shown in listings: which key is which
    digest: Mapped[str] = mapped_column(String(64), unique=True)
    scopes: Mapped[list[str]] = mapped_column(default=list)
    agent_id: Mapped[str | None] = mapped_column(String(64))  # acts as this agent when set
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_used_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]


class IdempotentRequest(Base):
    """The answer given to a POST/PATCH with an Idempotency-Key, replayed to its retries."""

    __tablename__ = "idempotent_requests"
    __table_args__ = (UniqueConstraint("api_key_id", "key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    api_key_id: Mapped[int] = mapped_column(ForeignKey("api_keys.id"))
    key: Mapped[str] = mapped_column(String(255))
    request_digest: Mapped[str] = mapped_column(String(64))  # method, path and body
    status_code: Mapped[int]
    response: Mapped[dict[str, Any]] = mapped_column(SecretJSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)


class WebhookEndpoint(Base):
    """A receiver of outgoing webhooks (Standard Webhooks), with the events it subscribed."""

    __tablename__ = "webhook_endpoints"

    id: Mapped[int] = mapped_column(primary_key=True)
    url: Mapped[str] = mapped_column(Text)
    events: Mapped[list[str]] = mapped_column(default=list)
    secret: Mapped[str] = mapped_column(SecretText)  # whsec_…, sealed like customer data
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    disabled_at: Mapped[datetime | None]
    disabled_reason: Mapped[str | None] = mapped_column(Text)


class WebhookDelivery(Base):
    """One event for one endpoint, written in the transaction of the change it describes and
    delivered by the workers (in order per task and endpoint)."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (Index("ix_webhook_deliveries_due", "status", "next_attempt_at"),
                      Index("ix_webhook_deliveries_endpoint_task", "endpoint_id", "task_id",
                            "id"))

    id: Mapped[int] = mapped_column(primary_key=True)
    endpoint_id: Mapped[int] = mapped_column(ForeignKey("webhook_endpoints.id"))
    message_id: Mapped[str] = mapped_column(String(64), unique=True)  # webhook-id: msg_…
    type: Mapped[str] = mapped_column(String(32))
    task_id: Mapped[int | None]
    payload: Mapped[dict[str, Any]] = mapped_column(SecretJSON, default=dict)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    delivered_at: Mapped[datetime | None]
    claimed_by: Mapped[str | None] = mapped_column(String(64))
    dispatched_at: Mapped[datetime | None]


class WebhookAttempt(Base):
    """One try of a delivery: what the receiver answered, and how fast."""

    __tablename__ = "webhook_attempts"

    id: Mapped[int] = mapped_column(primary_key=True)
    delivery_id: Mapped[int] = mapped_column(ForeignKey("webhook_deliveries.id"), index=True)
    at: Mapped[datetime] = mapped_column(default=utcnow)
    status_code: Mapped[int | None]
    latency_ms: Mapped[int | None]
    response_head: Mapped[str | None] = mapped_column(Text)  # the first bytes of the answer
    error: Mapped[str | None] = mapped_column(Text)


class User(Base):
    """A person who signs in to the web console (`opsbot users`): staff, so their email is
    kept plain; the TOTP secret is sealed with the shared key, the password is an Argon2id
    hash (store.users)."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(150), unique=True)  # lowercased
    role: Mapped[str] = mapped_column(String(16))  # store.users.UserRole
    agent_id: Mapped[str | None] = mapped_column(String(64))  # the rules.yaml agent they are
    teams: Mapped[list[str]] = mapped_column(default=list)
    password_hash: Mapped[str] = mapped_column(String(255))
    totp_secret: Mapped[str] = mapped_column(SecretText)  # base32, sealed like customer data
    mfa_enrolled_at: Mapped[datetime | None]  # NULL: enrolment pending
    totp_last_step: Mapped[int | None]  # the last accepted TOTP step: a replay is refused
    failed_attempts: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[datetime | None]
    disabled_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class RecoveryCode(Base):
    """A single-use code that stands in for a TOTP code: only its SHA-256 is kept."""

    __tablename__ = "recovery_codes"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    digest: Mapped[str] = mapped_column(String(64))
    used_at: Mapped[datetime | None]


class ConsoleSession(Base):
    """A signed-in browser of the web console: only the SHA-256 of its cookie is kept."""

    __tablename__ = "console_sessions"

    id: Mapped[int] = mapped_column(primary_key=True)
    digest: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(default=utcnow)
    stepped_up_at: Mapped[datetime | None]  # the last re-entry of a code for a risky action
    mfa_passed: Mapped[bool] = mapped_column(Boolean, default=False)  # False: password only
    ended_at: Mapped[datetime | None]

    user: Mapped[User] = relationship(lazy="joined")


class DecisionEffect(StrEnum):
    """What a recorded rules decision did: the messages whose fate the rules decided."""

    CREATED = "created"  # a new task
    IGNORED = "ignored"  # a rule said `ignore`: kept, no task
    REOPENED = "reopened"  # reopened the customer's recently closed task


class RuleDecision(Base):
    """One evaluation of the rules that decided a message's fate, with everything needed to
    evaluate another rules file on it (`opsbot rules replay`): the facts (the text and a
    WhatsApp Flow's answers are read from the message, sealed with the customer's key), the
    agents' routing states as routing saw them, and the outcome."""

    __tablename__ = "rule_decisions"

    id: Mapped[int] = mapped_column(primary_key=True)
    message_id: Mapped[int] = mapped_column(ForeignKey("messages.id"), unique=True)
    contact_id: Mapped[int | None] = mapped_column(ForeignKey("contacts.id"), index=True)
    task_id: Mapped[int | None] = mapped_column(ForeignKey("tasks.id"))
    at: Mapped[datetime] = mapped_column(index=True)  # the instant the rules were evaluated at
    rules_sha256: Mapped[str] = mapped_column(String(64))
    effect: Mapped[str] = mapped_column(String(16))  # DecisionEffect
    facts: Mapped[dict[str, Any]] = mapped_column(default=dict)
    contact_tags: Mapped[list[str] | None] = mapped_column(JSON)  # NULL: the customer was erased
    outcome: Mapped[dict[str, Any]] = mapped_column(default=dict)
    agents: Mapped[dict[str, Any] | None] = mapped_column(JSON)  # routing's view, when routed


class SurveyStatus(StrEnum):
    SCHEDULED = "scheduled"  # waits for its delay to pass
    SENT = "sent"
    SKIPPED = "skipped"  # outside the window with no survey template: nothing sent
    FAILED = "failed"  # WhatsApp refused it
    ANSWERED = "answered"


class Survey(Base):
    """The satisfaction survey of one task (at most one: the unique task_id), its answer and
    the agent and team it rates, as they were when the task closed."""

    __tablename__ = "surveys"

    id: Mapped[int] = mapped_column(primary_key=True)
    task_id: Mapped[int] = mapped_column(ForeignKey("tasks.id"), unique=True)
    contact_id: Mapped[int | None] = mapped_column(ForeignKey("contacts.id"), index=True)
    agent_id: Mapped[str | None] = mapped_column(String(64))
    team: Mapped[str | None] = mapped_column(String(64))
    category: Mapped[str | None] = mapped_column(String(32))
    language: Mapped[str | None] = mapped_column(String(8))
    status: Mapped[str] = mapped_column(String(16), default=SurveyStatus.SCHEDULED)
    due_at: Mapped[datetime]
    via: Mapped[str | None] = mapped_column(String(16))  # interactive | template
    sent_at: Mapped[datetime | None] = mapped_column(index=True)
    provider_message_id: Mapped[str | None] = mapped_column(String(256))
    score: Mapped[int | None]
    good: Mapped[bool | None] = mapped_column(Boolean)
    answered_at: Mapped[datetime | None] = mapped_column(index=True)
    answered_by: Mapped[str | None] = mapped_column(String(16))  # button | text
    comment: Mapped[str | None] = mapped_column(SecretText)
    comment_at: Mapped[datetime | None]
    note: Mapped[str | None] = mapped_column(Text)  # why it was skipped or failed
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
