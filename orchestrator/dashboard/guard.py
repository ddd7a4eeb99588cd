"""Browser sessions, CSRF and security headers for every dashboard request.

The session is Flask's signed cookie holding the user id and the id of the JWT
session family that ``accounts.login`` started (the same rules as
``POST /auth/login``: verified email, bcrypt, rate limits). Each request checks
that family is still alive, so signing out (which revokes it) ends the session
everywhere, and ``Principal`` is built exactly as for a JWT caller; storing it
on ``flask.g`` turns on the tenant filter of ``orchestrator.tenancy``.

CSRF: Flask-WTF's signed, session-bound tokens, checked here for every unsafe
method of this blueprint only (the API authenticates by bearer header, which a
browser never sends on its own, so it needs none).
"""

from __future__ import annotations

from datetime import timedelta

from flask import Flask, g, redirect, request, session, url_for
from flask_wtf.csrf import CSRFError, generate_csrf, validate_csrf
from werkzeug.wrappers import Response
from wtforms import ValidationError

from orchestrator.config import is_production
from orchestrator.dashboard import bp
from orchestrator.errors import Forbidden
from orchestrator.extensions import db
from orchestrator.models import RefreshToken, Scope, User, utcnow
from orchestrator.security import Principal

SESSION_COOKIE_NAME = "scriptmesh_session"
#: Pages reachable without a session.
PUBLIC_ENDPOINTS = frozenset({"dashboard.sign_in", "dashboard.sign_up", "dashboard.verify",
                              "dashboard.reset_password", "dashboard.static"})
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)


def configure_sessions(app: Flask) -> None:
    """Cookie settings: HttpOnly, SameSite=Lax, Secure in production; lifetime = refresh token."""
    app.config["SESSION_COOKIE_NAME"] = SESSION_COOKIE_NAME
    app.config["SESSION_COOKIE_HTTPONLY"] = True
    app.config["SESSION_COOKIE_SAMESITE"] = "Lax"
    app.config["SESSION_COOKIE_SECURE"] = is_production(app.config)
    app.config["PERMANENT_SESSION_LIFETIME"] = timedelta(days=app.config["REFRESH_TOKEN_DAYS"])
    # Tokens are bound to the signed session cookie; they live as long as it does.
    app.config.setdefault("WTF_CSRF_TIME_LIMIT", None)
    app.jinja_env.globals["csrf_token"] = generate_csrf


def start_session(user_id: str, family_id: str) -> None:
    session.clear()
    session.permanent = True
    session["uid"] = user_id
    session["fam"] = family_id


def session_family() -> str | None:
    return session.get("fam")


def end_session() -> None:
    session.clear()


def principal_from_session() -> Principal | None:
    """The signed-in user as a ``Principal`` (as for a JWT), or None."""
    user_id, family_id = session.get("uid"), session.get("fam")
    if not user_id or not family_id:
        return None
    alive = db.session.execute(
        db.select(RefreshToken.jti).where(
            RefreshToken.family_id == family_id, RefreshToken.user_id == user_id,
            RefreshToken.revoked_at.is_(None), RefreshToken.expires_at > utcnow()).limit(1)
    ).first()
    if alive is None:
        return None
    user = db.session.execute(
        db.select(User).where(User.id == user_id).execution_options(all_tenants=True)
    ).scalar_one_or_none()
    if user is None:
        return None
    g.user_email = user.email
    return Principal(tenant_id=user.tenant_id, user_id=user.id, scope=Scope.ADMIN,
                     is_admin=user.is_admin)


@bp.before_request
def _authenticate_and_check_csrf() -> Response | None:
    if request.method in UNSAFE_METHODS:
        token = request.form.get("csrf_token") or request.headers.get("X-CSRFToken")
        try:
            validate_csrf(token)
        except (ValidationError, CSRFError) as exc:
            raise Forbidden(f"The form expired or did not come from this site ({exc}); "
                            "reload the page and try again.", error_code="csrf_failed") from None
    if request.endpoint in PUBLIC_ENDPOINTS:
        return None
    principal = principal_from_session()
    if principal is None:
        end_session()
        return redirect(url_for("dashboard.sign_in", next=request.full_path.rstrip("?")))
    g.principal = principal
    g.tenant_id = principal.tenant_id
    return None


@bp.after_request
def _security_headers(response: Response) -> Response:
    response.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "same-origin"
    response.headers["X-Frame-Options"] = "DENY"
    if request.endpoint != "dashboard.static":
        response.headers["Cache-Control"] = "no-store"
    return response
