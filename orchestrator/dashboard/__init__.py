"""The web dashboard: a blueprint of server-rendered pages over the same services as the API.

``init_dashboard(app)`` is the one hook ``create_app`` calls. Pages live under
``/ui`` (``/`` redirects there), one module per area (``auth_views``,
``fleet_views``, ``job_views``, ``fanout_views``, ``schedule_views``,
``settings_views``); the browser session is a signed cookie (``session``) and
every form carries a CSRF token (``guard``).
"""

from __future__ import annotations

from flask import Blueprint, Flask, redirect, url_for
from werkzeug.wrappers import Response

bp = Blueprint("dashboard", __name__, url_prefix="/ui", template_folder="templates",
               static_folder="static", static_url_path="/static")


def init_dashboard(app: Flask) -> None:
    """Register the dashboard's blueprint, its cookie settings and ``/`` -> ``/ui/``."""
    from orchestrator.dashboard import (  # noqa: F401 - the modules add their routes to bp
        auth_views,
        fanout_views,
        fleet_views,
        guard,
        job_views,
        schedule_views,
        settings_views,
    )
    from orchestrator.dashboard.guard import configure_sessions

    configure_sessions(app)
    app.register_blueprint(bp)
    app.add_url_rule("/", "dashboard_root", _root)


def _root() -> Response:
    return redirect(url_for("dashboard.agents"))
