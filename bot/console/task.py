"""A task's page: the conversation, deadlines and pauses, the audit trail with the routing
explanation, and the actions, run through the one command layer as the signed-in person."""

import asyncio
import logging
import uuid
from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import Response

from bot.console.auth import (
    Refused,
    Viewer,
    checked,
    require_admin,
    require_step_up,
    services_of,
    signed_in,
)
from bot.console.board import SLA_LABELS
from bot.console.pages import redirect, render
from bot.usecases.assignment import assign_task
from bot.worker.drains import request_drain
from notifiers.commands import run_verb
from notifiers.grammar import Command, CommandResult, Context
from notifiers.texts import WHATSAPP_TEXT_LIMIT
from store.board import TaskPage, load_task_page
from store.gdpr import erase_contact
from store.tasks import get_task
from store.types import utcnow

router = APIRouter()
log = logging.getLogger(__name__)
Signed = Annotated[Viewer, Depends(signed_in)]
VERBS = ("accept", "start", "wait", "note", "reply", "close", "reassign")
NEEDS_TEXT = {"note": "a note", "reply": "a reply"}


@router.get("/tasks/{ref}", name="task_page")
def task_page(request: Request, viewer: Signed, ref: str, said: str = "",
              failed: str = "") -> Response:
    services = services_of(request)
    page = _page(services, viewer, ref)
    agents = sorted(services.rules.current.agents, key=lambda agent: agent.name)
    return render(request, "task.html", viewer=viewer, page=page, agents=agents,
                  sla_labels=SLA_LABELS, said=said, failed=failed,
                  text_limit=WHATSAPP_TEXT_LIMIT, media_on=services.whatsapp is not None)


@router.get("/tasks/{ref}/media/{media_id}", name="task_media")
async def task_media(request: Request, viewer: Signed, ref: str, media_id: str) -> Response:
    """A file the customer sent on this task, fetched from WhatsApp for a viewer who may see
    the task (never stored); served so that it cannot run as a page of ours."""
    services = services_of(request)
    page = await asyncio.to_thread(_page, services, viewer, ref)
    if services.whatsapp is None or media_id not in {e.media_id for e in page.conversation}:
        raise Refused(404, "This task has no such file.")
    try:
        content, mime = await asyncio.to_thread(services.whatsapp.download_media, media_id)
    except Exception as exc:  # the Graph API or the network: the person may try again
        log.warning("media of %s: download failed (%s)", ref, exc.__class__.__name__)
        raise Refused(502, "WhatsApp did not hand over the file: try again in a minute.") from None
    return Response(content, media_type=mime or "application/octet-stream",
                    headers={"Cache-Control": "private, no-store",
                             "X-Content-Type-Options": "nosniff",
                             "Content-Security-Policy": "sandbox; default-src 'none'"})


def _page(services, viewer: Viewer, ref: str) -> TaskPage:
    with services.db.transaction(readonly=True) as session:
        return load_task_page(session, actor=viewer.actor, ref=ref, now=utcnow())


@router.post("/tasks/{ref}/actions", name="task_action")
async def task_action(request: Request, viewer: Signed, ref: str,
                      verb: Annotated[str, Form()], text: Annotated[str, Form()] = "",
                      agent: Annotated[str, Form()] = "") -> Response:
    await checked(request, viewer)
    result = _run(request, viewer, _command(ref, verb, text.strip(), agent.strip()))
    target = request.url_for("task_page", ref=ref).path
    key = "said" if result.ok else "failed"
    return redirect(f"{target}?{key}={quote(result.text)}")


def _command(ref: str, verb: str, text: str, agent: str) -> Command:
    if verb not in VERBS:
        return Command(verb, (ref,))  # the command layer answers an unknown verb itself
    if verb == "reassign":
        return Command(verb, (ref, agent))
    return Command(verb, (ref, text[:WHATSAPP_TEXT_LIMIT]) if text else (ref,))


def _run(request: Request, viewer: Viewer, command: Command) -> CommandResult:
    services = services_of(request)
    if command.verb in NEEDS_TEXT and len(command.args) < 2:
        return CommandResult(f"Write {NEEDS_TEXT[command.verb]} first.", ok=False)
    with services.db.transaction() as session:
        context = Context(session, services.rules.current, viewer.agent, viewer.actor,
                          utcnow(), assign_task, request_key=uuid.uuid4().hex)
        result = run_verb(context, command)
    if result.ok:
        request_drain(services)  # send what the verb queued (cards, the customer's reply)
    return result


@router.post("/tasks/{ref}/erase", name="task_erase")
async def task_erase(request: Request, viewer: Signed, ref: str,
                     reason: Annotated[str, Form()] = "") -> Response:
    await checked(request, viewer)
    require_admin(viewer)
    require_step_up(request, viewer)
    result = (_erase(request, viewer, ref, reason.strip()) if reason.strip() else
              CommandResult("Write why the customer's data is erased first.", ok=False))
    target = request.url_for("task_page", ref=ref).path
    key = "said" if result.ok else "failed"
    return redirect(f"{target}?{key}={quote(result.text)}")


def _erase(request: Request, viewer: Viewer, ref: str, reason: str) -> CommandResult:
    """Erases the task's customer for good with the store function and audit of `opsbot
    contacts erase` (the actor is the viewer)."""
    with services_of(request).db.transaction() as session:
        contact = get_task(session, ref=ref).contact
        if contact is None or contact.erased_at is not None:
            return CommandResult("This task has no customer left to erase.", ok=False)
        erasure = erase_contact(session, wa_id=str(contact.wa_id or contact.user_id),
                                actor=viewer.actor.label, reason=reason, now=utcnow())
    return CommandResult(f"The customer's data is erased for good: {erasure.messages} "
                         f"messages emptied; {erasure.tasks} task(s) keep their anonymous "
                         "figures.")
