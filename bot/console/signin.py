"""Signing in and out: password, then the TOTP code (with enrolment the first time, or a
recovery code), and step-up before a dangerous action."""

import hmac
import secrets
from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import Response

from bot.console.auth import (
    SESSION_COOKIE,
    SignInNeeded,
    Viewer,
    checked,
    half_signed_in,
    limit_sign_in,
    refuse_forgery,
    root_of,
    safe_next,
    secure_cookies,
    services_of,
    signed_in,
)
from bot.console.pages import redirect, render
from store.models import ConsoleSession, User
from store.types import utcnow
from store.users import (
    LOCKOUT_FOR,
    MFA_REQUIRED,
    SignInOutcome,
    UserRole,
    check_code,
    check_password,
    end_session,
    open_session,
    pass_mfa,
    qr_svg,
    step_up,
    totp_uri,
)

PRE_COOKIE = "opsbot_pre"  # the sign-in form's own CSRF token, before there is a session
OUTCOME_SENTENCES = {
    SignInOutcome.WRONG: "Wrong email or password.",
    SignInOutcome.LOCKED: "This account is locked after too many failed attempts. It unlocks "
                          f"by itself within {LOCKOUT_FOR.seconds // 60} minutes, or ask an "
                          "admin.",
    SignInOutcome.DISABLED: "This account is disabled. Ask an admin.",
}

router = APIRouter()
Form_ = Annotated[str, Form()]


@router.get("/login", name="sign_in_page")
def sign_in_page(request: Request, next: str = "") -> Response:
    token = secrets.token_urlsafe(24)
    response = render(request, "login.html", pre_token=token, next=safe_next(request, next))
    _set_cookie(request, response, PRE_COOKIE, token)
    return response


@router.post("/login")
def sign_in(request: Request, email: Form_, password: Form_, csrf_token: Form_,
            next: Annotated[str, Form()] = "") -> Response:
    limit_sign_in(request)
    if not hmac.compare_digest(csrf_token.encode(), request.cookies.get(PRE_COOKIE, "").encode()):
        refuse_forgery(request, actor="console:unknown")
    services = services_of(request)
    address = request.client.host if request.client else None
    with services.db.transaction() as session:
        result = check_password(session, email=email, password=password, now=utcnow(),
                                ip=address)
        if result.outcome is not SignInOutcome.OK:
            token = secrets.token_urlsafe(24)
            response = render(request, "login.html", status=401, pre_token=token, email=email,
                              next=safe_next(request, next),
                              error=OUTCOME_SENTENCES[result.outcome])
            _set_cookie(request, response, PRE_COOKIE, token)
            return response
        user = result.user
        needs_code = UserRole(user.role) in MFA_REQUIRED or user.mfa_enrolled_at is not None
        token, _ = open_session(session, user=user, now=utcnow(), mfa_passed=not needs_code)
    target = request.url_for("mfa_page").path if needs_code else safe_next(request, next)
    if needs_code and next:
        target += "?next=" + quote(safe_next(request, next))
    response = redirect(target)
    _set_cookie(request, response, SESSION_COOKIE, token)
    response.delete_cookie(PRE_COOKIE, path=root_of(request))
    return response


@router.get("/mfa", name="mfa_page")
def mfa_page(request: Request, next: str = "") -> Response:
    console_session, user = half_signed_in(request)
    return _code_form(request, console_session, user, next=safe_next(request, next))


@router.post("/mfa")
def mfa(request: Request, code: Form_, csrf_token: Form_,
        next: Annotated[str, Form()] = "") -> Response:
    console_session, user = half_signed_in(request)
    if not hmac.compare_digest(csrf_token.encode(), console_session.csrf_token.encode()):
        refuse_forgery(request, actor=f"user:{user.email}")
    address = request.client.host if request.client else None
    with services_of(request).db.transaction() as session:
        user = session.merge(user)
        console_session = session.merge(console_session)
        outcome = check_code(session, user=user, code=code, now=utcnow(), ip=address)
        if outcome is SignInOutcome.OK:
            token, _ = pass_mfa(session, console_session=console_session, now=utcnow())
            response = redirect(safe_next(request, next))
            _set_cookie(request, response, SESSION_COOKIE, token)
            return response
        if outcome is SignInOutcome.LOCKED:  # the password must be given again, after the lock
            end_session(session, token=request.cookies.get(SESSION_COOKIE, ""), now=utcnow())
    if outcome is SignInOutcome.LOCKED:
        raise SignInNeeded()
    return _code_form(request, console_session, user, next=safe_next(request, next),
                      error="That code is not right. Codes change every 30 seconds.",
                      status=401)


def _code_form(request: Request, console_session: ConsoleSession, user: User, *, next: str,
               error: str | None = None, status: int = 200) -> Response:
    enrolling = user.mfa_enrolled_at is None
    uri = totp_uri(user) if enrolling else None
    return render(request, "mfa.html", status=status, enrolling=enrolling, email=user.email,
                  qr=qr_svg(uri) if uri else None, secret=user.totp_secret if enrolling else None,
                  csrf_token=console_session.csrf_token, next=next, error=error)


@router.post("/logout", name="sign_out")
async def sign_out(request: Request, viewer: Annotated[Viewer, Depends(signed_in)]) -> Response:
    await checked(request, viewer)
    with services_of(request).db.transaction() as session:
        end_session(session, token=request.cookies.get(SESSION_COOKIE, ""), now=utcnow())
    response = redirect(request.url_for("sign_in_page").path)
    response.delete_cookie(SESSION_COOKIE, path=root_of(request))
    return response


@router.get("/step-up", name="step_up_page")
def step_up_page(request: Request, viewer: Annotated[Viewer, Depends(signed_in)],
                 next: str = "") -> Response:
    return render(request, "step_up.html", viewer=viewer, next=safe_next(request, next))


@router.post("/step-up")
async def step_up_submit(request: Request, viewer: Annotated[Viewer, Depends(signed_in)],
                         code: Form_, next: Annotated[str, Form()] = "") -> Response:
    await checked(request, viewer)
    services = services_of(request)
    with services.db.transaction() as session:
        user = session.get(User, viewer.user_id)
        outcome = SignInOutcome.WRONG if user.mfa_enrolled_at is None else check_code(
            session, user=user, code=code, now=utcnow(),
            ip=request.client.host if request.client else None)
        if outcome is SignInOutcome.OK:
            step_up(session, console_session=session.get(ConsoleSession, viewer.session_id),
                    now=utcnow())
            return redirect(safe_next(request, next))
        if outcome is SignInOutcome.LOCKED:  # five wrong codes: signed out, and locked
            end_session(session, token=request.cookies.get(SESSION_COOKIE, ""), now=utcnow())
    if outcome is SignInOutcome.LOCKED:
        raise SignInNeeded()
    return render(request, "step_up.html", status=401, viewer=viewer,
                  next=safe_next(request, next), error="That code is not right.")


def _set_cookie(request: Request, response: Response, name: str, value: str) -> None:
    response.set_cookie(name, value, path=root_of(request), httponly=True, samesite="lax",
                        secure=secure_cookies(request))
