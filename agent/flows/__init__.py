"""Flows: declarative multi-step jobs (HTTP, databases, Redis, control flow) run on the agent.

Load a definition with :func:`load_flow_file` / :func:`load_flow`, then run it with
:class:`FlowEngine`, which reports progress through an ``emit(event)`` callback.
"""

from agent.flows.context import CancelToken
from agent.flows.engine import FlowEngine, FlowResult
from agent.flows.errors import FlowError
from agent.flows.schema import Flow, Step, load_flow, load_flow_file

__all__ = ["CancelToken", "Flow", "FlowEngine", "FlowError", "FlowResult", "Step", "load_flow",
           "load_flow_file"]
