"""ScriptMesh hub: ``create_app`` builds the Flask application."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from flask import Flask

__version__ = "0.1.0"


def create_app(config: Mapping[str, Any] | None = None) -> Flask:
    """Build a hub app: defaults, then the environment, then ``config``.

    :param config: settings that override the environment (tests pass theirs here).
    """
    from orchestrator import key_cache
    from orchestrator.api import add_security_scheme, register_blueprints
    from orchestrator.config import load_settings
    from orchestrator.dashboard import init_dashboard
    from orchestrator.errors import register_error_handlers
    from orchestrator.extensions import init_extensions
    from orchestrator.request_guard import init_request_guard
    from orchestrator.subscribers import register_subscribers
    from orchestrator.tenancy import install_tenant_filter

    app = Flask(__name__)
    app.config.from_mapping(load_settings(config))
    app.config["JWT_ACCESS_TOKEN_EXPIRES"] = timedelta(minutes=app.config["ACCESS_TOKEN_MINUTES"])
    app.config["JWT_REFRESH_TOKEN_EXPIRES"] = timedelta(days=app.config["REFRESH_TOKEN_DAYS"])
    init_request_guard(app)
    app.json.sort_keys = False  # type: ignore[attr-defined]
    configure_logging(app)
    init_extensions(app)
    key_cache.init_app(app)
    install_tenant_filter()
    register_subscribers(app)
    add_security_scheme()
    register_blueprints(app)
    register_error_handlers(app)
    init_dashboard(app)
    return app


def configure_logging(app: Flask) -> None:
    """One line per record on stderr, unless the host (gunicorn, pytest) set logging up."""
    root = logging.getLogger()
    if not root.handlers:
        logging.basicConfig(
            level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
        )
