"""HTTP layer: the flask-smorest ``Api`` and the ``Blueprint`` every resource uses.

Resources live one per module (``auth.py``, ``agents.py``, ``jobs.py`` ...);
``register_blueprints`` is the single list of them.
"""

from __future__ import annotations

from typing import Any, TypeVar

import flask_smorest
from flask import Flask, current_app
from marshmallow.utils import missing
from swagger_ui_bundle import swagger_ui_path
from webargs.flaskparser import FlaskParser
from werkzeug.exceptions import HTTPException

from orchestrator.api.openapi_errors import ErrorEnvelopeSchema, document_error_responses
from orchestrator.errors import render_http_exception
from orchestrator.extensions import db

T = TypeVar("T")


class JSONBodyParser(FlaskParser):
    """Parse request bodies as JSON whatever their Content-Type says.

    The product docs show ``curl -d '{...}'`` without a JSON content type
    (curl then sends form encoding); those calls must work unchanged.
    """

    def _raw_load_json(self, req: Any) -> Any:
        """The body through the app's strict JSON provider (``orchestrator/request_guard.py``)."""
        data = req.get_data(cache=True)
        return current_app.json.loads(data) if data else missing


def committed(value: T) -> T:
    """Commit the request's transaction (the edge commits; services only flush), then
    return ``value``: ``return committed(service.call(...))``."""
    db.session.commit()
    return value


class Blueprint(flask_smorest.Blueprint):
    ARGUMENTS_PARSER = JSONBodyParser()


class Api(flask_smorest.Api):
    """flask-smorest's Api with errors rendered (and documented) in ScriptMesh's one shape."""

    ERROR_SCHEMA = ErrorEnvelopeSchema

    def handle_http_exception(self, error: HTTPException) -> Any:
        return render_http_exception(error)


api = Api(spec_kwargs={
    "info": {"description": "ScriptMesh hub API. Authenticate with `Authorization: "
                            "Bearer <JWT or sm_live_ API key>`."},
})


def add_security_scheme() -> None:
    api.spec.components.security_scheme(
        "bearerAuth",
        {"type": "http", "scheme": "bearer",
         "description": "An access JWT from /auth/login or an sm_live_ API key."},
    )


def register_blueprints(app: Flask) -> None:
    """Every resource's blueprint, in one list."""
    from orchestrator.api import (
        admin_integrations,
        agent_protocol,
        agents,
        ai,
        api_keys,
        audit_trail,
        auth,
        deliveries,
        fanouts,
        fleet,
        git_hooks,
        health,
        inline_flows,
        integrations,
        jobs,
        metrics,
        prometheus,
        schedules,
        webhook_settings,
    )

    for module in (health, auth, api_keys, agent_protocol, agents, jobs, metrics,
                   schedules, integrations, admin_integrations, webhook_settings, deliveries,
                   prometheus, fanouts, ai, git_hooks, fleet, inline_flows):
        api.register_blueprint(module.blp)
    audit_trail.init_app(app)
    document_error_responses(api.spec)
    _serve_swagger_assets(app)


def _serve_swagger_assets(app: Flask) -> None:
    """Swagger UI's JS/CSS from the installed package: /docs works offline."""
    from flask import send_from_directory

    def swagger_asset(filename: str) -> Any:
        return send_from_directory(str(swagger_ui_path), filename, max_age=3600)

    app.add_url_rule("/docs/static/<path:filename>", "swagger_asset", swagger_asset)
