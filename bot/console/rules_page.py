"""The rules, for supervisors and admins: the file opsbot serves, its SHA-256 and its check
(what `opsbot rules check` says of the file on disk: a broken file shows PATH:LINE:COL while
the rules loaded before keep working), its content, "Test a message": what
`opsbot rules test` explains, with the agents' current availability and load, and "Replay a
candidate": what `opsbot rules replay` finds for an uploaded or edited rules file on the
decisions of a period. Nothing is stored or published."""

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Depends, File, Form, Request, UploadFile
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from bot.console.auth import Viewer, checked, require_overseer, services_of, signed_in
from bot.console.pages import render
from bot.core.services import Services
from bot.usecases.replay import DEFAULT_WINDOW, describe_change, replay_period, replay_rules
from notifiers.texts import WHATSAPP_TEXT_LIMIT
from rules import MessageType, RulesConfig
from rules.explain import (
    CheckResult,
    Explanation,
    MessageTrial,
    check_rules_file,
    check_rules_text,
    explain_message,
    explanation_lines,
    parse_instant,
)
from store.agents import get_agent_states
from store.types import utcnow

router = APIRouter()
REPLAY_SHOWN = 200  # changed messages listed on the page (the summary counts them all)
CANDIDATE_LIMIT = 512 * 1024  # bytes of an uploaded candidate: rules files are a few kB
Signed = Annotated[Viewer, Depends(signed_in)]


@dataclass(frozen=True)
class RulesFile:
    """The rules file as it is on disk now (content None: unreadable, or not UTF-8)."""

    path: Path
    sha256: str | None
    modified_at: datetime | None
    content: str | None
    check: CheckResult


def read_rules_file(path: Path) -> RulesFile:
    """The file at `path`, read once: its hash, content and check agree."""
    try:
        raw, stat = path.read_bytes(), path.stat()
    except OSError:
        return RulesFile(path, None, None, None, check_rules_file(path))
    sha = hashlib.sha256(raw).hexdigest()
    modified = datetime.fromtimestamp(stat.st_mtime, UTC)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return RulesFile(path, sha, modified, None, check_rules_file(path))
    return RulesFile(path, sha, modified, text, check_rules_text(text, path))


@dataclass(frozen=True)
class TestForm:
    """The "Test a message" fields as the person wrote them."""

    text: str = ""
    type: str = MessageType.text.value
    at: str = ""
    language: str = ""
    status: str = "lead"


@router.get("/rules", name="rules_page")
def rules_page(request: Request, viewer: Signed) -> Response:
    require_overseer(viewer)
    return _page(request, viewer, TestForm())


@router.post("/rules/test", name="rules_test")
async def rules_test(request: Request, viewer: Signed, text: Annotated[str, Form()] = "",
                     type: Annotated[str, Form()] = MessageType.text.value,
                     at: Annotated[str, Form()] = "", language: Annotated[str, Form()] = "",
                     status: Annotated[str, Form()] = "lead") -> Response:
    await checked(request, viewer)
    require_overseer(viewer)
    form = TestForm(text.strip()[:WHATSAPP_TEXT_LIMIT], type, at.strip(), language.strip().lower(),
                    status.strip() or "lead")
    services = services_of(request)
    config = services.rules.current
    try:
        found = _explain(services, config, form)
    except ValueError as exc:
        return _page(request, viewer, form, problem=str(exc), status=400)
    return _page(request, viewer, form, found=found,
                 lines=explanation_lines(config, found))


def _explain(services: Services, config: RulesConfig, form: TestForm) -> Explanation:
    """The dry run of `form`, routed by the agents' current states (read only); raises
    ValueError with a sentence for the person."""
    if not form.text:
        raise ValueError("Write the text of a message to test.")
    try:
        kind = MessageType(form.type)
    except ValueError:
        raise ValueError(f"There is no message type '{form.type}'.") from None
    now = parse_instant(form.at) if form.at else utcnow()
    trial = MessageTrial(text=form.text, type=kind, status=form.status,
                         language=form.language or None)
    with services.db.transaction(readonly=True) as session:
        agents = get_agent_states(session)
    return explain_message(config, trial, now=now, agents=agents)


@dataclass(frozen=True)
class ReplayForm:
    """The "Replay a candidate" fields as the person left them: the candidate's text, its
    name in file:line:col issues, and the period (a window, or a start and an end)."""

    candidate: str = ""
    name: str = "candidate.yaml"
    since: str = DEFAULT_WINDOW
    start: str = ""
    end: str = ""


@router.post("/rules/replay", name="rules_replay")
async def rules_replay(request: Request, viewer: Signed, candidate: Annotated[str, Form()] = "",
                       upload: Annotated[UploadFile | None, File()] = None,
                       since: Annotated[str, Form()] = DEFAULT_WINDOW,
                       start: Annotated[str, Form()] = "",
                       end: Annotated[str, Form()] = "") -> Response:
    await checked(request, viewer)
    require_overseer(viewer)
    try:
        form = await _replay_form(candidate, upload, since, start, end)
        first, until = replay_period(None if form.start or form.end else form.since,
                                     form.start or None, form.end or None, now=utcnow())
    except ValueError as exc:
        return _page(request, viewer, TestForm(), replay_form=_kept(candidate, since, start, end),
                     replay_problem=str(exc), status=400)
    checked_text = check_rules_text(form.candidate, form.name)
    if checked_text.config is None:
        return _page(request, viewer, TestForm(), replay_form=form,
                     replay_issues=checked_text.lines, status=400)
    found = await run_in_threadpool(replay_rules, services_of(request).db, checked_text.config,
                                    since=first, until=until, keep=REPLAY_SHOWN)
    return _page(request, viewer, TestForm(), replay_form=form, replay=found,
                 replay_summary=found.summary.as_dict(), describe=describe_change)


async def _replay_form(candidate: str, upload: UploadFile | None, since: str, start: str,
                       end: str) -> ReplayForm:
    """The form with the uploaded file's text when a file was given, else the edited text;
    raises ValueError for a file too large or not UTF-8, or no candidate at all."""
    name = "candidate.yaml"
    if upload is not None and upload.filename:
        raw = await upload.read(CANDIDATE_LIMIT + 1)
        if len(raw) > CANDIDATE_LIMIT:
            raise ValueError(f"The file is larger than {CANDIDATE_LIMIT // 1024} kB.")
        try:
            candidate = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise ValueError("The file is not UTF-8 text.") from None
        name = Path(upload.filename).name
    if not candidate.strip():
        raise ValueError("Upload a rules file or write one in the text box.")
    return ReplayForm(candidate, name, since.strip() or DEFAULT_WINDOW, start.strip(), end.strip())


def _kept(candidate: str, since: str, start: str, end: str) -> ReplayForm:
    return ReplayForm(candidate, since=since.strip() or DEFAULT_WINDOW, start=start.strip(),
                      end=end.strip())


def _page(request: Request, viewer: Viewer, form: TestForm, status: int = 200,
          replay_form: ReplayForm | None = None, **result) -> Response:
    holder = services_of(request).rules
    loaded = holder.current  # also picks up a change of the file since the last look
    file = read_rules_file(holder.path)
    return render(request, "rules.html", status=status, viewer=viewer, loaded=loaded,
                  file=file, refused=[str(issue) for issue in holder.last_error], form=form,
                  replay_form=replay_form or ReplayForm(file.content or ""),
                  types=[kind.value for kind in MessageType], **result)
