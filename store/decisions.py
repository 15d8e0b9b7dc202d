"""The recorded rules decisions (`rule_decisions`): written as messages are applied, read by
`opsbot rules replay`."""

from datetime import datetime
from typing import Any

from sqlalchemy import insert
from sqlalchemy.orm import Session

from store.models import RuleDecision


def record_decision(session: Session, *, message_id: int, contact_id: int | None,
                    task_id: int | None, at: datetime, rules_sha256: str, effect: str,
                    facts: dict[str, Any], contact_tags: list[str],
                    outcome: dict[str, Any], agents: dict[str, Any] | None = None) -> None:
    """Records one decision (one plain INSERT: nothing reads it back in this transaction)."""
    session.connection().execute(insert(RuleDecision), {
        "message_id": message_id, "contact_id": contact_id, "task_id": task_id, "at": at,
        "rules_sha256": rules_sha256, "effect": effect, "facts": facts,
        "contact_tags": contact_tags, "outcome": outcome, "agents": agents})
