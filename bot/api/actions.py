"""`POST /tasks/{ref}/actions`: an agent verb on a task, through the one command layer that
Slack and Telegram use (same handlers, permissions, audit and notifications)."""

import uuid
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field, model_validator
from sqlalchemy.orm import Session

from bot.api.auth import Caller, require, services_of
from bot.api.idempotent import Answer, IdempotencyKey, refusal, run_once
from bot.api.problems import documented
from bot.api.schemas import TaskOut, task_out
from bot.api.tasks import RefParam, find_task
from bot.usecases.assignment import assign_task
from bot.worker.drains import request_drain
from notifiers.commands import run_verb
from notifiers.grammar import Command, Context
from notifiers.texts import WHATSAPP_TEXT_LIMIT
from store.events import Audit, record_event
from store.types import utcnow

Verb = Literal["note", "reply", "close", "reassign", "accept", "wait", "start"]
NEEDS_TEXT = ("note", "reply")

router = APIRouter(tags=["tasks"])


class ActionIn(BaseModel):
    """A verb: `text` is the note, the reply or the resolution (close); `agent` the agent a
    reassign gives the task to."""

    model_config = ConfigDict(extra="forbid")

    verb: Verb
    text: str | None = Field(default=None, min_length=1, max_length=WHATSAPP_TEXT_LIMIT)
    agent: str | None = Field(default=None, min_length=1, max_length=64)

    @model_validator(mode="after")
    def _complete(self) -> "ActionIn":
        if self.verb in NEEDS_TEXT and not (self.text or "").strip():
            raise ValueError(f"{self.verb} needs a text")
        if self.verb == "reassign" and not self.agent:
            raise ValueError("reassign needs the agent to give the task to")
        return self


class ActionOut(BaseModel):
    """The command layer's answer and the task as it is now."""

    message: str
    task: TaskOut


Writer = Annotated[Caller, Depends(require("tasks:write"))]


@router.post("/tasks/{ref}/actions", response_model=ActionOut,
             responses=documented(409))
def act_on_task(request: Request, caller: Writer, ref: RefParam, action: ActionIn,
                idempotency_key: IdempotencyKey = None):
    """Runs the verb as the key's agent (or as `api:<name>` with an admin's permissions);
    a refusal is a 403 problem with the reason."""

    def act(session: Session) -> Answer:
        task = find_task(session, ref)  # the verb checks who may: refusals are audited
        if action.verb == "accept" and not caller.bound and task.assignee_id is None:
            reason = (f"{task.ref} has nobody to accept it for: a key of no agent cannot take "
                      "a task; reassign it, or use a key bound to an agent (opsbot apikeys "
                      "create --agent)")
            record_event(session, task=task, actor=caller.label, action=Audit.DENIED,
                         details={"verb": "accept", "reason": reason})
            return refusal(request, 403, reason)
        context = Context(session, services_of(request).rules.current, caller.agent,
                          caller.actor, utcnow(), assign_task, request_key=_request_key())
        result = run_verb(context, _command(action, task.ref))
        if not result.ok:
            return refusal(request, 403, result.text)
        return Answer(200, ActionOut(message=result.text, task=task_out(task))
                      .model_dump(mode="json"))

    response, acted = run_once(request, caller, idempotency_key,
                               action.model_dump(mode="json"), act)
    if acted and response.status_code == 200:
        request_drain(services_of(request))  # send what the verb queued (cards, replies)
    return response


def _command(action: ActionIn, ref: str) -> Command:
    """The parsed command of `action`; the text stays one argument (its line breaks kept)."""
    if action.verb == "reassign":
        return Command("reassign", (ref, action.agent or ""))
    return Command(action.verb, (ref, action.text) if action.text else (ref,))


def _request_key() -> str:
    """A fresh key for what the verb queues (the Idempotency-Key makes retries safe)."""
    return uuid.uuid4().hex
