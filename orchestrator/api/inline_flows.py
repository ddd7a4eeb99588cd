"""``POST /agent/dispatch``: run a flow definition sent inline (programmatic dispatch)."""

from __future__ import annotations

from typing import Any

from flask.views import MethodView
from marshmallow import Schema, fields, validate

from orchestrator.api import Blueprint
from orchestrator.models import Scope
from orchestrator.schemas.jobs import validate_variables
from orchestrator.security import current_principal, require_scope
from orchestrator.services.inline_flows import dispatch_inline

blp = Blueprint("inline_flows", __name__, description="Dispatch inline flow definitions")
BEARER = [{"bearerAuth": []}]


class InlineDispatchSchema(Schema):
    flow_id = fields.String(validate=validate.Length(1, 255), metadata={
        "description": "Optional: links the job to a flow in your own records."})
    definition = fields.Dict(required=True, metadata={
        "description": "The flow (ScriptMesh or TestMesh YAML as JSON)."})
    variables = fields.Dict(keys=fields.String(), values=fields.Raw(allow_none=True),
                            load_default=dict, validate=validate_variables)
    agent = fields.String(validate=validate.Length(1, 128), metadata={
        "description": "The agent to run it; default: the first online agent that opted in."})
    workspace_id = fields.String(metadata={"description": "Accepted for TestMesh; ignored."})
    timeout = fields.Integer(validate=validate.Range(1, 86400), load_default=300)


class InlineDispatchAnswerSchema(Schema):
    job_id = fields.String()
    execution_id = fields.String()
    status = fields.String(metadata={"example": "dispatched"})


@blp.route("/agent/dispatch")
class InlineDispatch(MethodView):
    @blp.doc(security=BEARER)
    @blp.arguments(InlineDispatchSchema)
    @blp.response(202, InlineDispatchAnswerSchema)
    @blp.alt_response(403, description="inline_flows_not_allowed")
    @blp.alt_response(422, description="invalid_flow or no_inline_agent")
    @require_scope(Scope.OPERATOR)
    def post(self, data: dict[str, Any]) -> Any:
        """Run a flow definition sent with the request on an agent that opted in.

        Only agents started with ``ALLOW_INLINE_FLOWS=true`` accept these jobs (and
        they refuse ``script`` steps unless also started with
        ``ALLOW_INLINE_FLOW_SCRIPTS=true``). Follow the job with ``GET /jobs/{job_id}``;
        ``execution_id`` is the same id. Needs scope ``operator``.
        """
        job = dispatch_inline(current_principal(), data).job
        return {"job_id": job.id, "execution_id": job.id, "status": "dispatched"}, 202
