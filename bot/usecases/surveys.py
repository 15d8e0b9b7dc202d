"""The satisfaction survey on WhatsApp: sending it once it is due, reading its answers.

Sending (a `survey` outbox row): inside the 24-hour window the question goes with reply
buttons (`faces`) or a list (`scale`); outside it as the survey template with quick replies,
or not at all when none is configured. A survey answered by a text rating before it was due,
of a task reopened meanwhile or of an erased customer is skipped; each case is noted on it.

Answers (called inside the caller's transaction by `conversation.apply_message`): a checked
button payload of the customer's own task records the score, whatever the task's state, and
never reopens nor creates a task; the first answer counts. A text message within
`comment_within` after the answer, while the customer has no open task, is its comment.
"""

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session

from bot.core import tunables
from bot.whatsapp.parsing import InboundMessage
from bot.whatsapp.sending import WhatsAppSender
from notifiers.errors import PermanentDeliveryError
from notifiers.texts import fit_whatsapp
from rules import RulesConfig, pick_language_text
from rules.survey import GOOD_FROM, SurveyConfig, SurveyStyle
from store.contacts import reply_window_closes
from store.db import Database, write_through
from store.events import Audit, record_event
from store.lifecycle import customer_actor
from store.models import Contact, Message, OutboxMessage, Survey, SurveyStatus, Task, TaskStatus
from store.outbox import queue_customer_message
from store.surveys import (
    REOPENED,
    answer_survey,
    attach_comment,
    find_open_comment,
    mark_survey_sent,
    mark_survey_unsent,
    read_survey_payload,
    survey_of,
    survey_payload,
)
from store.types import utcnow

_CLOSED = (TaskStatus.RESOLVED, TaskStatus.CLOSED)


@dataclass(frozen=True)
class _Plan:
    survey_id: int
    task_id: int
    to: str
    sender: str | None  # the business number the customer last wrote to
    language: str  # one the question is written in
    via: str | None  # interactive | template; None: skipped, `note` says why
    note: str | None = None
    already_sent: str | None = None


def send_survey(db: Database, whatsapp: WhatsAppSender | None, config: RulesConfig,
                outbox: OutboxMessage) -> str | None:
    """Sends the survey of a `survey` outbox row and records it sent; returns the wamid, or
    None when it is skipped (recorded with the reason). A survey sent already is not sent
    again. Raises TransientDeliveryError or PermanentDeliveryError."""
    with db.transaction() as session:
        plan = _plan(session, config, outbox, now=utcnow())
        if plan.via is None:
            mark_survey_unsent(session, task_id=plan.task_id, status=SurveyStatus.SKIPPED,
                               note=plan.note or "")
            return None
    if plan.already_sent:
        return plan.already_sent
    wamid = _send(whatsapp, config, plan)
    write_through(lambda: _record_sent(db, plan, wamid), waits=tunables.BACKOFF,
                  what=f"survey {plan.survey_id} sent as {wamid}")
    return wamid


def _record_sent(db: Database, plan: _Plan, wamid: str) -> None:
    with db.transaction() as session:
        mark_survey_sent(session, survey_id=plan.survey_id, via=plan.via, wamid=wamid,
                         at=utcnow())


def _plan(session: Session, config: RulesConfig, outbox: OutboxMessage, *,
          now: datetime) -> _Plan:
    survey = session.get(Survey, (outbox.payload or {}).get("survey_id"))
    if survey is None:
        raise PermanentDeliveryError(f"outbox {outbox.id}: its survey is gone")
    task, contact = session.get(Task, survey.task_id), session.get(Contact, survey.contact_id)
    note = _why_not(config.survey, survey, task, contact)
    language = (config.survey.language_for(survey.language, config.default_language)
                if config.survey is not None else config.default_language)
    plan = _Plan(survey.id, survey.task_id, "", None, language, None, note)
    if note is not None:
        return plan
    closes = reply_window_closes(contact)
    via = ("interactive" if closes is not None and now < closes
           else "template" if config.survey.template is not None else None)
    return _Plan(survey.id, survey.task_id, str(contact.wa_id or contact.user_id),
                 contact.business_phone_id, language, via,
                 None if via else "outside the 24-hour window, and survey.template is not set",
                 survey.provider_message_id)


def _why_not(config: SurveyConfig | None, survey: Survey, task: Task | None,
             contact: Contact | None) -> str | None:
    if config is None:
        return "rules.yaml has no survey: section any more"
    if contact is None or contact.erased_at is not None or task is None:
        return "the customer's data was erased"
    if survey.status == SurveyStatus.ANSWERED:
        return "answered (by a text rating) before it was due"
    if task.status not in _CLOSED:
        return REOPENED
    return None


def _send(whatsapp: WhatsAppSender | None, config: RulesConfig, plan: _Plan) -> str:
    if whatsapp is None:
        raise PermanentDeliveryError("WhatsApp is off (WHATSAPP_TOKEN is not set)")
    survey = config.survey
    choices = [(survey_payload(plan.task_id, answer.score), answer.title[plan.language])
               for answer in survey.answers]
    if plan.via == "template":
        language = survey.template.language_for(plan.language, config.default_language)
        return whatsapp.send_quick_replies(to=plan.to, template=survey.template,
                                           language=language, sender=plan.sender,
                                           payloads=[data for data, _title in choices])
    text = survey.question[plan.language]
    if survey.style is SurveyStyle.faces:
        return whatsapp.send_buttons(to=plan.to, text=text, choices=choices, sender=plan.sender)
    button = pick_language_text(survey.button, plan.language, config.default_language)
    return whatsapp.send_list(to=plan.to, text=text, button=str(button), choices=choices,
                              sender=plan.sender)


@dataclass(frozen=True)
class ButtonAnswer:
    """A checked survey button pressed by the customer of its task."""

    task: Task
    survey: Survey
    score: int


def read_button_answer(session: Session, *, message: InboundMessage,
                       contact: Contact) -> ButtonAnswer | None:
    """The survey answer in `message`: its payload is one we signed, for a task of this
    customer that has a survey. None for anything else (then it is an ordinary message)."""
    named = read_survey_payload(message.button_payload)
    if named is None:
        return None
    task = session.get(Task, named[0])
    if task is None or task.contact_id != contact.id:
        return None
    survey = survey_of(session, task_id=task.id)
    return ButtonAnswer(task, survey, named[1]) if survey is not None else None


def record_button_answer(session: Session, *, config: RulesConfig, answer: ButtonAnswer,
                         stored: Message, contact: Contact, at: datetime,
                         now: datetime) -> None:
    """Records a button answer pressed `at` on the rated task (its rating, a `rated` event
    at `now` with the agent and team it rates) and thanks the customer; a later answer is
    only kept on the task's trail. The message joins the rated task's trail either way."""
    stored.task_id = answer.task.id
    if not _answer(session, config, answer.task, answer.survey, answer.score, "button", at):
        record_event(session, task=answer.task, actor=customer_actor(contact.id).label,
                     action=Audit.MESSAGE, at=now,
                     details={"message_id": stored.id, "type": stored.type,
                              "text": (stored.text or "")[:1000], "reopened": False,
                              "survey_id": answer.survey.id, "already_answered": True})
        return
    record_event(session, task=answer.task, actor=customer_actor(contact.id).label,
                 action=Audit.RATED, at=now, details=_rated(answer.survey, stored, "button"))
    thank(session, config=config, survey=answer.survey, task=answer.task, contact=contact)


def answer_by_text(session: Session, *, config: RulesConfig, task: Task, score: int,
                   at: datetime) -> Survey | None:
    """Answers the task's survey with a text rating (the caller rated the task); returns the
    survey it answered, or None when there is none or it was answered already."""
    survey = survey_of(session, task_id=task.id)
    if survey is None or not _answer(session, config, task, survey, score, "text", at):
        return None
    return survey


def _answer(session: Session, config: RulesConfig, task: Task, survey: Survey, score: int,
            by: str, at: datetime) -> bool:
    good = config.survey.is_good(score) if config.survey is not None else score >= GOOD_FROM
    if not answer_survey(session, survey=survey, score=score, good=good, by=by, at=at):
        return False
    task.rating = score  # never a transition: a rating reopens nothing
    return True


def _rated(survey: Survey, stored: Message, by: str) -> dict:
    return {"rating": survey.score, "good": survey.good, "by": by, "agent": survey.agent_id,
            "team": survey.team, "survey_id": survey.id, "message_id": stored.id}


def rated_details(survey: Survey | None, stored: Message, rating: int) -> dict:
    """The details of the `rated` event of a text rating (with its survey's, if any)."""
    if survey is None:
        return {"rating": rating, "message_id": stored.id}
    return _rated(survey, stored, "text")


def thank(session: Session, *, config: RulesConfig, survey: Survey, task: Task,
          contact: Contact) -> None:
    """Queues the survey's thanks to the customer, once per survey (none configured: none)."""
    thanks = config.survey.thanks if config.survey is not None else {}
    text = pick_language_text(thanks, survey.language, config.default_language)
    if text:
        queue_customer_message(session, contact=contact, kind="survey_thanks",
                               text=fit_whatsapp(text), dedupe_key=f"survey_thanks:{survey.id}",
                               task=task)


def take_comment(session: Session, *, config: RulesConfig, message: InboundMessage,
                 stored: Message, contact: Contact, now: datetime) -> bool:
    """Keeps a text written within `comment_within` after the customer answered a survey
    as that survey's comment, on its task's trail; returns whether it did. The caller calls
    it only when the customer has no open task."""
    within = config.survey.comment_within if config.survey is not None else None
    if not within or message.type != "text" or not (stored.text or "").strip():
        return False
    survey = find_open_comment(session, contact_id=contact.id, since=message.at - within)
    if survey is None:
        return False
    attach_comment(session, survey=survey, text=stored.text, data_key_id=contact.data_key_id,
                   at=message.at)
    task = session.get(Task, survey.task_id)
    stored.task_id = task.id
    record_event(session, task=task, actor=customer_actor(contact.id).label,
                 action=Audit.MESSAGE, at=now,
                 details={"message_id": stored.id, "type": stored.type,
                          "text": stored.text[:1000], "reopened": False,
                          "survey_id": survey.id, "survey_comment": True})
    return True
