"""Satisfaction surveys: one per task (the unique `surveys.task_id`), scheduled when the task
closes, sent by the outbox once due, answered by a signed button payload or a text rating.

A payload is `csat:<task id>:<score>:<mac>`, the MAC a truncated HMAC-SHA256 under a key
derived from the index key: a customer cannot rate another customer's task, nor invent a
score, by typing a payload.
"""

import hmac
import re
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from rules.survey import SurveyConfig
from store import keys
from store.crypto import personal
from store.models import OutboxMessage, OutboxStatus, Survey, SurveyStatus, Task
from store.outbox import CUSTOMER_CHANNEL, add_outbox_message
from store.rows import insert_row

SURVEY_KIND = "survey"  # the outbox kind of a survey to send
REOPENED = "the task was reopened before the survey was due"
_MAC_BYTES = 12  # 96 bits: far beyond guessing, and the payload stays short
_PAYLOAD = re.compile(r"csat:(\d{1,18}):([1-5]):([0-9a-f]{24})")


def survey_payload(task_id: int, score: int) -> str:
    """The button payload that answers the survey of `task_id` with `score`."""
    return f"csat:{task_id}:{score}:{_mac(task_id, score)}"


def read_survey_payload(payload: str | None) -> tuple[int, int] | None:
    """The (task id, score) a payload signed by `survey_payload` names; None for anything
    else (another button, a forged or altered payload)."""
    match = _PAYLOAD.fullmatch(payload or "")
    if match is None:
        return None
    task_id, score = int(match.group(1)), int(match.group(2))
    return (task_id, score) if hmac.compare_digest(match.group(3), _mac(task_id, score)) else None


def _mac(task_id: int, score: int) -> str:
    message = f"csat:{task_id}:{score}".encode()
    return hmac.digest(keys.current().survey, message, "sha256")[:_MAC_BYTES].hex()


def schedule_survey(session: Session, *, survey: SurveyConfig | None, task: Task,
                    now: datetime) -> Survey | None:
    """Schedules the survey of a task just closed, with its outbox row due `survey.delay`
    from `now`; returns it, or None when there is none to send: no `survey:` configured, no
    customer, an erased one, or the task has its survey already (a survey skipped because the
    task was reopened is scheduled again)."""
    contact = task.contact
    if survey is None or contact is None or contact.erased_at is not None:
        return None
    due = now + survey.delay
    values = {"task_id": task.id, "contact_id": contact.id, "agent_id": task.assignee_id,
              "team": task.team, "category": task.category, "due_at": due, "created_at": now,
              "language": contact.language or task.language, "status": SurveyStatus.SCHEDULED}
    row = insert_row(session, Survey, values, skip_conflict=True)
    if row is None:
        return _revive(session, values)
    add_outbox_message(session, dedupe_key=f"survey:{task.id}", channel=CUSTOMER_CHANNEL,
                       kind=SURVEY_KIND, payload={"survey_id": row.id}, task_id=task.id,
                       contact_id=contact.id, new_key=True, not_before=due)
    return row


def _revive(session: Session, values: dict) -> Survey | None:
    row = survey_of(session, task_id=values["task_id"])
    if row is None or row.status != SurveyStatus.SKIPPED or row.note != REOPENED:
        return None
    for name, value in values.items():
        setattr(row, name, value)
    row.note = None
    session.execute(
        update(OutboxMessage).where(OutboxMessage.dedupe_key == f"survey:{row.task_id}")
        .values(status=OutboxStatus.PENDING, next_attempt_at=values["due_at"],
                dispatched_at=None, claimed_by=None, sent_at=None, attempts=0)
        .execution_options(synchronize_session=False))
    return row


def survey_of(session: Session, *, task_id: int) -> Survey | None:
    """The survey of a task, or None."""
    return session.scalar(select(Survey).where(Survey.task_id == task_id))


def mark_survey_sent(session: Session, *, survey_id: int, via: str, wamid: str,
                     at: datetime) -> None:
    """Records that WhatsApp accepted the survey (`via`: interactive or template)."""
    survey = session.get(Survey, survey_id)
    survey.via, survey.provider_message_id, survey.sent_at = via, wamid, at
    if survey.status != SurveyStatus.ANSWERED:
        survey.status, survey.note = SurveyStatus.SENT, None


def mark_survey_unsent(session: Session, *, task_id: int, status: SurveyStatus,
                       note: str) -> None:
    """Records why the survey of `task_id` was not sent (SKIPPED or FAILED), unless it was
    answered meanwhile."""
    survey = survey_of(session, task_id=task_id)
    if survey is not None and survey.status != SurveyStatus.ANSWERED:
        survey.status, survey.note = status, note[:1000]


def answer_survey(session: Session, *, survey: Survey, score: int, good: bool, by: str,
                  at: datetime) -> bool:
    """Records the answer (`by`: button or text); False when the survey was answered
    already: the first answer counts, a later one changes nothing."""
    if survey.answered_at is not None:
        return False
    survey.status, survey.score, survey.good = SurveyStatus.ANSWERED, score, good
    survey.answered_at, survey.answered_by = at, by
    return True


def find_open_comment(session: Session, *, contact_id: int, since: datetime) -> Survey | None:
    """The customer's survey answered at or after `since` that has no comment yet (the
    latest), or None."""
    query = (select(Survey).where(Survey.contact_id == contact_id, Survey.answered_at >= since,
                                  Survey.comment.is_(None))
             .order_by(Survey.answered_at.desc()).limit(1))
    return session.scalar(query)


def attach_comment(session: Session, *, survey: Survey, text: str, data_key_id: str | None,
                   at: datetime) -> None:
    """Keeps `text` as the survey's comment, sealed with the customer's data key."""
    survey.comment, survey.comment_at = personal(text, data_key_id), at
