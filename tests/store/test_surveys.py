"""Surveys in the store: signed payloads, one survey per task (the database's unique key, also
under concurrent transactions), and outbox rows that are not claimed before they are due."""

import threading
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from rules.loader import parse_rules
from store.claims import claim_outbox, has_free
from store.gdpr import export_contact
from store.lifecycle import Action, Actor, ActorKind
from store.models import OutboxMessage, Survey, SurveyStatus, Task
from store.surveys import (
    REOPENED,
    answer_survey,
    attach_comment,
    mark_survey_unsent,
    read_survey_payload,
    schedule_survey,
    survey_payload,
)
from store.tasks import transition_task
from tests.notifiers.helpers import NOW, RULES, make_task

ANA = Actor(ActorKind.AGENT, "ana")
SURVEY = parse_rules(RULES + "survey: {delay: 2m}\n").survey


def closed_task(db, **kwargs) -> int:
    with db.transaction() as session:
        task = make_task(session, assignee="ana", **kwargs)
        transition_task(session, task=task, action=Action.ACCEPT, actor=ANA, now=NOW)
        transition_task(session, task=task, action=Action.CLOSE, actor=ANA, now=NOW)
        return task.id


def counts(db) -> tuple[int, int]:
    with db.transaction() as session:
        return (session.scalar(select(func.count(Survey.id))),
                session.scalar(select(func.count(OutboxMessage.id))
                               .where(OutboxMessage.kind == "survey")))


def schedule(db, task_id, survey=SURVEY, now=NOW):
    with db.transaction() as session:
        row = schedule_survey(session, survey=survey, task=session.get(Task, task_id), now=now)
        return row.id if row is not None else None


def test_a_payload_names_its_task_and_score_and_is_checked():
    payload = survey_payload(12, 5)
    assert payload.startswith("csat:12:5:") and len(payload) <= 256
    assert read_survey_payload(payload) == (12, 5)


@pytest.mark.parametrize("payload", [
    None, "", "hola", "csat:12:5", "csat:12:4:" + "0" * 24, "csat:13:5:{mac}", "csat:12:6:{mac}",
    "csat:12:5:{mac}x", " csat:12:5:{mac}", "csat:-12:5:{mac}", "csat:12:5:" + "é" * 24,
])
def test_a_forged_or_altered_payload_names_nothing(payload):
    mac = survey_payload(12, 5).rsplit(":", 1)[1]
    assert read_survey_payload(payload.format(mac=mac) if payload else payload) is None


def test_the_survey_is_scheduled_once_with_the_task_as_it_closed(db):
    task_id = closed_task(db)
    survey_id = schedule(db, task_id)
    assert schedule(db, task_id) is None  # closed again: still one
    with db.transaction() as session:
        survey = session.get(Survey, survey_id)
        assert (survey.status, survey.agent_id, survey.team, survey.category,
                survey.language) == ("scheduled", "ana", "logistics", "operations", "es")
        assert survey.due_at == NOW + timedelta(minutes=2)
        [row] = session.scalars(select(OutboxMessage).where(OutboxMessage.kind == "survey"))
        assert (row.dedupe_key, row.next_attempt_at, row.payload) == (
            f"survey:{task_id}", NOW + timedelta(minutes=2), {"survey_id": survey_id})
    assert counts(db) == (1, 1)


def test_no_survey_without_config_customer_or_with_an_erased_customer(db):
    task_id = closed_task(db)
    assert schedule(db, task_id, survey=None) is None
    with db.transaction() as session:
        session.get(Task, task_id).contact.erased_at = NOW
    assert schedule(db, task_id) is None
    with db.transaction() as session:
        task = make_task(session)
        task.contact_id = None
        session.flush()
        session.expire(task)
        no_customer = task.id
    assert schedule(db, no_customer) is None
    assert counts(db) == (0, 0)


def test_a_survey_skipped_for_a_reopening_is_scheduled_again_at_the_next_closing(db):
    task_id = closed_task(db)
    schedule(db, task_id)
    with db.transaction() as session:
        mark_survey_unsent(session, task_id=task_id, status=SurveyStatus.SKIPPED, note=REOPENED)
        row = session.scalars(select(OutboxMessage).where(OutboxMessage.kind == "survey")).one()
        row.status = "sent"
    later = NOW + timedelta(hours=3)
    assert schedule(db, task_id, now=later) is not None
    with db.transaction() as session:
        survey = session.scalars(select(Survey)).one()
        row = session.scalars(select(OutboxMessage).where(OutboxMessage.kind == "survey")).one()
        assert (survey.status, survey.note, survey.due_at) == (
            "scheduled", None, later + timedelta(minutes=2))
        assert (row.status, row.next_attempt_at) == ("pending", later + timedelta(minutes=2))
    assert counts(db) == (1, 1)


def test_a_survey_row_is_not_claimed_before_it_is_due(db):
    task_id = closed_task(db)
    schedule(db, task_id)
    with db.transaction() as session:
        session.execute(OutboxMessage.__table__.update().values(status="sent")
                        .where(OutboxMessage.kind != "survey"))
    with db.transaction() as session:
        assert not has_free(session, OutboxMessage, now=NOW + timedelta(minutes=1))
        assert claim_outbox(session, owner="job-1", limit=10,
                            now=NOW + timedelta(minutes=1)) == []
        assert has_free(session, OutboxMessage, now=NOW + timedelta(minutes=2))
        [row] = claim_outbox(session, owner="job-1", limit=10, now=NOW + timedelta(minutes=2))
        assert row.kind == "survey"


def test_concurrent_closings_make_one_survey_and_one_outbox_row(db):
    """Two transactions schedule the survey of the same task at once: on PostgreSQL both
    have read the task before either inserts; the unique task_id lets one row in."""
    task_id = closed_task(db)
    together = threading.Barrier(2) if db.engine.dialect.name == "postgresql" else None
    made: list[int | None] = []

    def close_again():
        with db.transaction() as session:
            task = session.get(Task, task_id)
            assert task.contact is not None
            if together:
                together.wait(timeout=10)
            row = schedule_survey(session, survey=SURVEY, task=task, now=NOW)
            made.append(row.id if row is not None else None)

    threads = [threading.Thread(target=close_again) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert len(made) == 2 and made.count(None) == 1
    assert counts(db) == (1, 1)


def test_an_access_request_exports_the_survey_and_its_comment(db):
    task_id = closed_task(db)
    schedule(db, task_id)
    with db.transaction() as session:
        survey = session.scalar(select(Survey).where(Survey.task_id == task_id))
        contact = session.get(Task, task_id).contact
        answer_survey(session, survey=survey, score=1, good=False, by="button", at=NOW)
        attach_comment(session, survey=survey, text="Tardaron mucho",
                       data_key_id=contact.data_key_id, at=NOW)
        exported = export_contact(session, wa_id=contact.wa_id)["surveys"]
    assert exported == [{"task": f"T-{task_id}", "status": "answered", "sent_at": None,
                         "score": 1, "answered_at": NOW.isoformat(),
                         "comment": "Tardaron mucho"}]
