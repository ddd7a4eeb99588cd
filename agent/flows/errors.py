"""The exceptions a flow raises: invalid definitions, failed steps, bad expressions."""

from __future__ import annotations

from typing import Any


class FlowError(Exception):
    """Base class: a flow definition or a step could not be handled.

    Messages name the step and field but never carry response bodies or rows.
    """


class FlowSchemaError(FlowError):
    """The definition is not a valid flow; ``errors`` lists every problem found."""

    def __init__(self, errors: list[str]) -> None:
        super().__init__("; ".join(errors))
        self.errors = errors


class ExpressionError(FlowError):
    """An expression could not be parsed or evaluated."""


class InterpolationError(FlowError):
    """A ``${...}`` reference names nothing that exists."""


class StepFailed(FlowError):
    """A step's action or assertions failed; ``result`` keeps what it produced, if anything."""

    def __init__(self, message: str, result: Any = None) -> None:
        super().__init__(message)
        self.result = result


class AssertionsFailed(StepFailed):
    """One or more assertions were false; ``assertions`` holds every outcome."""

    def __init__(self, message: str, assertions: list[dict[str, Any]], result: Any = None) -> None:
        super().__init__(message, result)
        self.assertions = assertions


class StepTimeout(StepFailed):
    """A step ran past its own or the flow's deadline."""


class FlowCancelled(StepFailed):
    """The run was cancelled (by the hub, or by a failing parallel branch)."""
