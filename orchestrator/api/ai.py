"""/ai-config, /admin/ai-config, /ai/analyses and /jobs/{id}/diagnose: AI providers at work."""

from __future__ import annotations

from typing import Any

from flask.views import MethodView

from orchestrator.api import Blueprint
from orchestrator.api.admin_integrations import instance_admin_only
from orchestrator.extensions import db
from orchestrator.models import AiAnalysis, Scope
from orchestrator.schemas.ai import (
    AiConfigSchema,
    AiConfigViewSchema,
    AnalysisCreateSchema,
    AnalysisSchema,
    DiagnoseSchema,
    ResolutionSchema,
    ResolveArgsSchema,
)
from orchestrator.security import current_principal, require_scope
from orchestrator.services.ai import analysis, routing

blp = Blueprint("ai", __name__, description="AI providers: routing, diagnosis, analyses")
BEARER = [{"bearerAuth": []}]


def _queued(row: AiAnalysis) -> AiAnalysis:
    db.session.commit()  # the worker's task is enqueued on commit
    return row


@blp.route("/ai-config")
class TenantAiConfig(MethodView):
    @blp.doc(security=BEARER)
    @blp.response(200, AiConfigViewSchema)
    @require_scope(Scope.READ)
    def get(self) -> dict[str, Any]:
        """The tenant's AI routing: default provider and per-task overrides."""
        return routing.config_view(routing.tenant_config(current_principal().tenant_id))

    @blp.doc(security=BEARER)
    @blp.arguments(AiConfigSchema)
    @blp.response(200, AiConfigViewSchema)
    @require_scope(Scope.ADMIN)
    def put(self, data: dict[str, Any]) -> dict[str, Any]:
        """Replace the tenant's AI routing. ``agent_name`` is an AI task (diagnosis, repair,
        flakiness); other names get 422 with the implemented ones."""
        row = routing.put_config(current_principal().tenant_id, data)
        db.session.commit()
        return routing.config_view(row)


@blp.route("/ai-config/resolve")
class ResolveProvider(MethodView):
    @blp.doc(security=BEARER)
    @blp.arguments(ResolveArgsSchema, location="query")
    @blp.response(200, ResolutionSchema)
    @require_scope(Scope.READ)
    def get(self, args: dict[str, Any]) -> dict[str, Any]:
        """Which provider a task would use now, and which link of the chain chose it."""
        return routing.resolve(args["task"], current_principal().tenant_id).view()


@blp.route("/admin/ai-config")
class GlobalAiConfig(MethodView):
    @blp.doc(security=BEARER)
    @blp.response(200, AiConfigViewSchema)
    @require_scope(Scope.ADMIN)
    @instance_admin_only
    def get(self) -> dict[str, Any]:
        """The instance's AI routing (the global default of every tenant's chain)."""
        return routing.config_view(routing.global_config())

    @blp.doc(security=BEARER)
    @blp.arguments(AiConfigSchema)
    @blp.response(200, AiConfigViewSchema)
    @require_scope(Scope.ADMIN)
    @instance_admin_only
    def put(self, data: dict[str, Any]) -> dict[str, Any]:
        """Replace the instance's AI routing (global ai_provider integrations only)."""
        row = routing.put_config(None, data)
        db.session.commit()
        return routing.config_view(row)


@blp.route("/jobs/<job_id>/diagnose")
class DiagnoseJob(MethodView):
    @blp.doc(security=BEARER)
    @blp.arguments(DiagnoseSchema)
    @blp.response(202, AnalysisSchema)
    @require_scope(Scope.OPERATOR)
    def post(self, data: dict[str, Any], job_id: str) -> AiAnalysis:
        """Diagnose a job in the worker; the result lands on ``GET /jobs/{id}`` as
        ``diagnosis`` and on ``GET /ai/analyses/{id}``."""
        return _queued(analysis.request_analysis(data["task"], job_id=job_id))


@blp.route("/ai/analyses")
class AnalysisList(MethodView):
    @blp.doc(security=BEARER)
    @blp.arguments(AnalysisCreateSchema)
    @blp.response(202, AnalysisSchema)
    @require_scope(Scope.OPERATOR)
    def post(self, data: dict[str, Any]) -> AiAnalysis:
        """Run an AI task in the worker: diagnosis/repair (``job_id``) or flakiness
        (``script`` or ``schedule_id``: its recent run history)."""
        return _queued(analysis.request_analysis(
            data["task"], job_id=data.get("job_id"), script=data.get("script"),
            schedule_id=data.get("schedule_id")))


@blp.route("/ai/analyses/<analysis_id>")
class AnalysisItem(MethodView):
    @blp.doc(security=BEARER)
    @blp.response(200, AnalysisSchema)
    @require_scope(Scope.READ)
    def get(self, analysis_id: str) -> AiAnalysis:
        """One AI analysis: queued, done (with ``result``) or error."""
        return analysis.get_analysis(analysis_id)
