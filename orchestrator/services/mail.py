"""Outgoing mail: SMTP, Resend's HTTP API, or a development outbox on disk.

The transport follows the configuration: ``MAIL_SMTP_URL`` (``smtp://`` or
``smtps://user:pass@host:port``) wins, then ``RESEND_API_KEY``; with neither,
every message is written as an ``.eml`` file under ``<DATA_DIR>/outbox/`` and
logged in one line, so ``make run`` works without a mail server.
"""

from __future__ import annotations

import logging
import secrets
import smtplib
import ssl
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path
from urllib.parse import unquote, urlsplit

import requests
from flask import current_app

from orchestrator.config import is_production

log = logging.getLogger(__name__)

DEFAULT_RESEND_API_URL = "https://api.resend.com/emails"
DEFAULT_SMTP_PORT = 587
DEFAULT_SMTPS_PORT = 465
MAIL_TIMEOUT_SECONDS = 10
OUTBOX_DIR = "outbox"


class MailError(RuntimeError):
    """A message could not be handed to the configured transport."""


def build_message(to: str, subject: str, text: str) -> EmailMessage:
    """A plain-text message from ``MAIL_FROM`` to ``to``."""
    message = EmailMessage()
    message["From"] = current_app.config["MAIL_FROM"]
    message["To"] = to
    message["Subject"] = subject
    message.set_content(text)
    return message


def send(message: EmailMessage, *, dev_hint: str | None = None) -> str:
    """Deliver ``message`` with the configured transport and return the transport's name.

    :param dev_hint: a short text (such as a verification code) added to the
        outbox log line outside production, so developers see it in the terminal.
    :raises MailError: when SMTP or Resend refuse or cannot be reached.
    """
    config = current_app.config
    if config.get("MAIL_SMTP_URL"):
        _send_smtp(message, config["MAIL_SMTP_URL"])
        transport = "smtp"
    elif config.get("RESEND_API_KEY"):
        _send_resend(message, config["RESEND_API_KEY"],
                     config.get("RESEND_API_URL") or DEFAULT_RESEND_API_URL)
        transport = "resend"
    else:
        _write_outbox(message, dev_hint)  # logs its own line
        return "outbox"
    log.info("mail: sent %r to %s via %s", message["Subject"], message["To"], transport)
    return transport


def _send_smtp(message: EmailMessage, url: str) -> None:
    """Send through an SMTP server; ``smtps://`` is implicit TLS, ``smtp://`` uses STARTTLS
    when the server offers it."""
    parts = urlsplit(url)
    if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
        raise MailError("MAIL_SMTP_URL must look like smtp://user:pass@host:port or smtps://...")
    implicit_tls = parts.scheme == "smtps"
    port = parts.port or (DEFAULT_SMTPS_PORT if implicit_tls else DEFAULT_SMTP_PORT)
    try:
        if implicit_tls:
            server: smtplib.SMTP = smtplib.SMTP_SSL(
                parts.hostname, port, timeout=MAIL_TIMEOUT_SECONDS,
                context=ssl.create_default_context())
        else:
            server = smtplib.SMTP(parts.hostname, port, timeout=MAIL_TIMEOUT_SECONDS)
        with server:
            server.ehlo()
            if not implicit_tls and server.has_extn("starttls"):
                server.starttls(context=ssl.create_default_context())
                server.ehlo()
            if parts.username:
                server.login(unquote(parts.username), unquote(parts.password or ""))
            server.send_message(message)
    except (smtplib.SMTPException, OSError) as exc:
        # The URL holds a password: name the host only.
        raise MailError(f"SMTP delivery via {parts.hostname}:{port} failed: "
                        f"{type(exc).__name__}") from exc


def _send_resend(message: EmailMessage, api_key: str, api_url: str) -> None:
    """Send through Resend's HTTP API (``POST /emails`` with a bearer key)."""
    payload = {
        "from": message["From"], "to": [message["To"]], "subject": message["Subject"],
        "text": message.get_content(),
    }
    try:
        response = requests.post(api_url, json=payload, timeout=MAIL_TIMEOUT_SECONDS,
                                 headers={"Authorization": f"Bearer {api_key}"})
    except requests.RequestException as exc:
        raise MailError(f"Resend API unreachable: {type(exc).__name__}") from exc
    if response.status_code >= 300:
        raise MailError(f"Resend API answered HTTP {response.status_code}")


def outbox_dir() -> Path:
    """Where the development outbox keeps its ``.eml`` files."""
    return Path(current_app.config["DATA_DIR"]) / OUTBOX_DIR


def _write_outbox(message: EmailMessage, dev_hint: str | None) -> Path:
    """Save ``message`` as ``<outbox>/<UTC timestamp>-<random>.eml`` and log one line."""
    directory = outbox_dir()
    directory.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S.%fZ")
    path = directory / f"{stamp}-{secrets.token_hex(4)}.eml"
    path.write_bytes(message.as_bytes())
    hint = ""
    if dev_hint and not is_production(current_app.config):
        hint = f" [{dev_hint}]"
    log.warning("mail outbox (no MAIL_SMTP_URL or RESEND_API_KEY): to %s: %s%s -> %s",
                message["To"], message["Subject"], hint, path)
    return path
