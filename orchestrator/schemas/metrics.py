"""Schema for GET /metrics/json."""

from marshmallow import Schema, fields

from orchestrator.schemas.jobs import UTCDateTime


class AgentCountsSchema(Schema):
    total = fields.Integer()
    online = fields.Integer()
    offline = fields.Integer()


class JobCountsSchema(Schema):
    total = fields.Integer()
    by_status = fields.Dict(keys=fields.String(), values=fields.Integer(),
                            metadata={"example": {"pending": 0, "running": 1, "success": 42}})


class PercentilesSchema(Schema):
    count = fields.Integer(metadata={"description": "Jobs the percentiles are computed over"})
    p50 = fields.Integer(allow_none=True)
    p95 = fields.Integer(allow_none=True)
    p99 = fields.Integer(allow_none=True)


class MetricsSchema(Schema):
    agents = fields.Nested(AgentCountsSchema)
    jobs = fields.Nested(JobCountsSchema)
    queues = fields.Dict(keys=fields.String(), values=fields.Integer(),
                         metadata={"description": "Jobs waiting in each agent's queue"})
    dispatch_latency_ms = fields.Nested(PercentilesSchema,
                                        metadata={"description": "created -> started"})
    run_duration_ms = fields.Nested(PercentilesSchema)
    generated_at = UTCDateTime()
