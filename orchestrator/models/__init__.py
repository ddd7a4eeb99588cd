"""The data model. Import models from here so Alembic sees every table."""

from orchestrator.models.agent import Agent
from orchestrator.models.ai import AiAnalysis, AiConfig, GlobalAiConfig
from orchestrator.models.api_key import ApiKey, Scope
from orchestrator.models.audit import AlertState, AuditEntry
from orchestrator.models.base import Base, TenantScoped, utcnow
from orchestrator.models.delivery import Delivery, WebhookSecret
from orchestrator.models.event import Event
from orchestrator.models.fanout import Fanout, FanoutStatus, StopReason
from orchestrator.models.git import GitComment, GitDelivery
from orchestrator.models.integration import GlobalIntegration, Integration
from orchestrator.models.job import TERMINAL_STATUSES, Job, JobStatus
from orchestrator.models.job_step import JobStep, StepStatus
from orchestrator.models.outbox import OutboxMessage
from orchestrator.models.revoked_token import RevokedToken
from orchestrator.models.schedule import Schedule, ScheduleRun
from orchestrator.models.tenant import EmailCode, RefreshToken, Tenant, User

__all__ = [
    "AlertState", "AuditEntry",
    "Agent", "ApiKey", "Base", "EmailCode", "Event", "Job", "JobStatus", "JobStep",
    "OutboxMessage", "RefreshToken", "RevokedToken", "StepStatus",
    "Scope", "TERMINAL_STATUSES", "Tenant", "TenantScoped", "User", "utcnow",
    "Fanout", "FanoutStatus", "StopReason",
    "AiAnalysis", "AiConfig", "GlobalAiConfig", "GitComment", "GitDelivery",
    "Delivery", "GlobalIntegration", "Integration", "Schedule", "ScheduleRun", "WebhookSecret",
]
