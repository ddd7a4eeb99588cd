"""Sign in, sign up, verify email, password reset and sign out: the API's account rules."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar
from urllib.parse import urlsplit

from flask import current_app, flash, redirect, request, url_for
from flask_jwt_extended import decode_token
from flask_limiter.util import get_remote_address
from werkzeug.wrappers import Response

from orchestrator.api.auth import RATE_LIMIT_MESSAGE
from orchestrator.config import DEFAULT_AUTH_IP_RATE_LIMIT, DEFAULT_AUTH_RATE_LIMIT
from orchestrator.dashboard import bp
from orchestrator.dashboard.guard import end_session, session_family, start_session
from orchestrator.dashboard.pages import flash_error, page
from orchestrator.errors import ScriptMeshError
from orchestrator.extensions import db, limiter
from orchestrator.services import accounts, signup

F = TypeVar("F", bound=Callable[..., Any])


def _account_key() -> str:
    email = request.form.get("email", "")
    if email.strip():
        return "account:" + accounts.normalise_email(email)
    return "anonymous:" + (get_remote_address() or "-")


def auth_rate_limits(view: F) -> F:
    """The API's two auth limits (per account, per IP) on this page's form posts."""
    per_ip = limiter.limit(
        lambda: current_app.config.get("AUTH_IP_RATE_LIMIT") or DEFAULT_AUTH_IP_RATE_LIMIT,
        key_func=get_remote_address, methods=["POST"], error_message=RATE_LIMIT_MESSAGE)
    per_account = limiter.limit(
        lambda: current_app.config.get("AUTH_RATE_LIMIT") or DEFAULT_AUTH_RATE_LIMIT,
        key_func=_account_key, methods=["POST"], error_message=RATE_LIMIT_MESSAGE)
    return per_ip(per_account(view))


def _safe_next(target: str | None) -> str:
    """Only a local path: a sign-in link must not forward anyone to another site."""
    parts = urlsplit(target or "")
    if not target or parts.scheme or parts.netloc or not target.startswith("/ui"):
        return url_for("dashboard.agents")
    return target


@bp.route("/sign-in", methods=["GET", "POST"])
@auth_rate_limits
def sign_in() -> Response | tuple[str, int]:
    email = request.form.get("email", "").strip()
    if request.method == "POST":
        try:
            tokens = accounts.login(email, request.form.get("password", ""))
        except ScriptMeshError as exc:
            flash_error(exc)
            unverified = exc.error_code == "email_not_verified"
            return page("sign_in.html", exc.code or 400, email=email, unverified=unverified)
        claims = decode_token(tokens["refresh_token"])
        start_session(claims["sub"], claims["fam"])
        return redirect(_safe_next(request.args.get("next")))
    return page("sign_in.html", email=email, unverified=False)


@bp.route("/sign-up", methods=["GET", "POST"])
@auth_rate_limits
def sign_up() -> Response | tuple[str, int]:
    form = {k: request.form.get(k, "").strip() for k in ("email", "tenant_name")}
    if request.method == "POST":
        try:
            accounts.register(form["email"], request.form.get("password", ""),
                              form["tenant_name"] or None)
        except ScriptMeshError as exc:
            flash_error(exc)
            return page("sign_up.html", exc.code or 400, form=form)
        flash("Account created. We mailed you a 6-digit code: enter it to verify your email.",
              "ok")
        return redirect(url_for("dashboard.verify", email=form["email"]))
    return page("sign_up.html", form=form)


@bp.route("/verify", methods=["GET", "POST"])
@auth_rate_limits
def verify() -> Response | tuple[str, int]:
    email = (request.form.get("email") or request.args.get("email") or "").strip()
    if request.method == "POST":
        try:
            if request.form.get("action") == "resend":
                accounts.resend_code(email)
                flash("If that address waits for verification, a new code is on its way.", "ok")
                return redirect(url_for("dashboard.verify", email=email))
            accounts.verify_email(email, request.form.get("code", ""))
        except ScriptMeshError as exc:
            flash_error(exc)
            return page("verify.html", exc.code or 400, email=email)
        flash("Email verified: sign in.", "ok")
        return redirect(url_for("dashboard.sign_in", email=email))
    return page("verify.html", email=email)


@bp.route("/reset-password", methods=["GET", "POST"])
@auth_rate_limits
def reset_password() -> Response | tuple[str, int]:
    """Mail a reset code, then set a new password with it (``POST /auth/password-reset``
    and ``/confirm``: the same service, so every session of the user ends)."""
    email = (request.form.get("email") or request.args.get("email") or "").strip()
    if request.method == "POST":
        try:
            if request.form.get("action") == "send":
                signup.request_password_reset(email)
                flash("If that address has a verified account, a 6-digit code is on its way.",
                      "ok")
                return redirect(url_for("dashboard.reset_password", email=email, sent=1))
            signup.confirm_password_reset(email, request.form.get("code", ""),
                                          request.form.get("password", ""))
        except ScriptMeshError as exc:
            flash_error(exc)
            return page("reset_password.html", exc.code or 400, email=email, sent=True)
        flash("Password changed: sign in with the new one.", "ok")
        return redirect(url_for("dashboard.sign_in", email=email))
    return page("reset_password.html", email=email, sent=bool(request.args.get("sent")))


@bp.route("/sign-out", methods=["POST"])
def sign_out() -> Response:
    """Revoke the session family (as POST /auth/logout does) and drop the cookie."""
    family = session_family()
    if family:
        accounts.revoke_family(family)
        db.session.commit()
    end_session()
    flash("Signed out.", "ok")
    return redirect(url_for("dashboard.sign_in"))
