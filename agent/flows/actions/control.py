"""Flow control: ``condition``, ``for_each``, ``parallel`` and ``run_flow``.

Nested steps are reported with qualified ids: ``check.then_step`` for a condition
or a parallel branch, ``each_user[2].get_user`` for a loop item, ``sub.step`` for
a sub-flow.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

from agent.flows.context import ActionContext, ActionSpec, CancelToken
from agent.flows.errors import ExpressionError, FlowError, StepFailed
from agent.flows.expressions import evaluate

MAX_FLOW_DEPTH = 16
STEPS = {"$ref": "#/$defs/steps"}
IDENTIFIER = {"type": "string", "pattern": "^[A-Za-z_][A-Za-z0-9_]*$"}

CONDITION_SCHEMA = {
    "required": ["condition"],
    "properties": {"condition": {"type": ["string", "boolean"]}, "then": STEPS, "else": STEPS},
}
FOR_EACH_SCHEMA = {
    "required": ["items"],
    "properties": {"items": {"type": ["array", "string"]}, "steps": STEPS,
                   "item_name": IDENTIFIER, "index_name": IDENTIFIER,
                   "fail_fast": {"type": ["boolean", "string"]}},
}
PARALLEL_SCHEMA = {
    "required": ["branches"],
    "properties": {
        "branches": {
            "type": "array",
            "minItems": 1,
            "items": {"if": {"type": "array"}, "then": STEPS, "else": {"$ref": "#/$defs/step"}},
        },
        "max_concurrent": {"type": ["integer", "string"], "minimum": 1},
        "fail_fast": {"type": ["boolean", "string"]},
    },
}
RUN_FLOW_SCHEMA = {
    "required": ["flow"],
    "properties": {"flow": {"type": "string", "minLength": 1}, "input": {"type": "object"}},
}


def condition(config: dict[str, Any], ctx: ActionContext) -> dict[str, Any]:
    """Run the ``then`` steps when ``condition`` holds, else the ``else`` steps."""
    expression = config["condition"]
    try:
        taken = bool(
            expression if isinstance(expression, bool) else evaluate(expression, ctx.names())
        )
    except ExpressionError as exc:
        raise StepFailed(f"condition {expression!r}: {exc}") from None
    branch = "then" if taken else "else"
    failure = ctx.run_steps(config.get(branch) or [], f"{ctx.step_id}.")
    result = {"branch": branch, "matched": taken}
    if failure:
        raise StepFailed(f"{branch} branch failed: {failure}", result)
    return result


def for_each(config: dict[str, Any], ctx: ActionContext) -> dict[str, Any]:
    """Run ``steps`` once per item with ``item_name`` / ``index_name`` bound (in order).

    Each item gets its own scope, so ``${inner_step...}`` means this item's result. With
    ``fail_fast`` (the default) the loop stops at the first failing item. Without
    ``steps`` (TestMesh's form) the items are only collected: ``results`` lists
    ``{index, item}`` and ``items_processed`` counts them.
    """
    items = config["items"]
    if not isinstance(items, list):
        raise StepFailed(f"for_each: items must be a list, got {type(items).__name__}")
    if not config.get("steps"):
        collected = [{"index": index, "item": item} for index, item in enumerate(items)]
        return {"results": collected, "count": len(items), "items_processed": len(items),
                "passed": len(items), "failed": 0, "completed": True}
    item_name, index_name = config.get("item_name", "item"), config.get("index_name", "index")
    results: list[dict[str, Any]] = []
    first_failure = None
    for index, item in enumerate(items):
        ctx.run.check()
        scope = ctx.scope.child({item_name: item, index_name: index})
        failure = ctx.run_steps(config["steps"], f"{ctx.step_id}[{index}].", scope)
        results.append({"index": index, "item": item, "status": "failed" if failure else "passed",
                        "error": failure, "results": scope.results, "outputs": scope.outputs})
        if failure and first_failure is None:
            first_failure = f"item {index}: {failure}"
        if failure and config.get("fail_fast", True):
            break
    failed = sum(1 for entry in results if entry["status"] == "failed")
    result = {"results": results, "count": len(items), "passed": len(results) - failed,
              "failed": failed, "items_processed": len(results), "completed": not failed}
    if first_failure:
        raise StepFailed(first_failure, result)
    return result


def _branches(config: dict[str, Any]) -> list[list[Any]]:
    return [branch if isinstance(branch, list) else [branch] for branch in config["branches"]]


def parallel(config: dict[str, Any], ctx: ActionContext) -> dict[str, Any]:
    """Run ``branches`` (a step or a list of steps each) on up to ``max_concurrent`` threads.

    With ``fail_fast`` the first failing branch cancels the others: running steps stop at
    their next check and branches not started yet are skipped.
    """
    branches = _branches(config)
    workers = max(1, int(config.get("max_concurrent") or len(branches)))
    fail_fast = bool(config.get("fail_fast", False))
    group = CancelToken(ctx.run.cancel)
    branch_run = ctx.run.derive(cancel=group)

    def run_branch(index: int, steps: list[Any]) -> dict[str, Any]:
        if group.reason is not None:
            return {"index": index, "status": "skipped", "error": None}
        failure = ctx.engine.run_steps(steps, ctx.scope, branch_run, f"{ctx.step_id}.")
        if failure and fail_fast:
            group.cancel(f"branch {index} failed")
        return {"index": index, "status": "failed" if failure else "passed", "error": failure}

    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="flow-branch") as pool:
        futures = [pool.submit(run_branch, index, steps) for index, steps in enumerate(branches)]
        outcomes = [future.result() for future in futures]
    failed = [entry for entry in outcomes if entry["status"] == "failed"]
    result = {"branches": outcomes, "passed": sum(e["status"] == "passed" for e in outcomes),
              "failed": len(failed)}
    if failed:
        raise StepFailed(f"branch {failed[0]['index']} failed: {failed[0]['error']}", result)
    ctx.run.check()
    return result


def _chain(stack: tuple[str, ...], name: str) -> str:
    return " -> ".join([*dict.fromkeys(stack), name])


def run_flow(config: dict[str, Any], ctx: ActionContext) -> dict[str, Any]:
    """Run another flow (resolved through the engine's resolver) with ``input`` variables.

    A flow that is already running further up the chain is refused: that would recurse.
    """
    name, stack = str(config["flow"]), ctx.run.flow_stack
    if ctx.engine.resolver is None:
        raise StepFailed("run_flow: this engine has no flow resolver (no other flows allowed)")
    if name in stack:
        raise StepFailed(f"run_flow: cycle refused: {_chain(stack, name)}")
    if len(stack) >= MAX_FLOW_DEPTH:
        raise StepFailed(f"run_flow: flows nested deeper than {MAX_FLOW_DEPTH}")
    try:
        flow = ctx.engine.resolver(name)
    except FlowError as exc:
        raise StepFailed(f"run_flow {name!r}: {exc}") from None
    if flow.name in stack:
        raise StepFailed(f"run_flow: cycle refused: {_chain(stack, flow.name)}")
    sub_run = ctx.run.derive(flow_stack=(*stack, name, flow.name))
    error, scope = ctx.engine.run_subflow(flow, config.get("input") or {}, sub_run,
                                          f"{ctx.step_id}.")
    result = {"flow": name, "status": "failed" if error else "passed", "outputs": scope.outputs}
    if error:
        raise StepFailed(f"flow {name!r} failed: {error}", result)
    return result


_STEP = {"id": "get", "action": "http_request", "config": {"url": "${BASE_URL}/health"}}
ACTIONS = {
    "condition": ActionSpec(
        condition, frozenset({"condition", "then", "else"}), CONDITION_SCHEMA, ("condition",),
        result_keys=("branch", "matched"),
        example={"condition": "${fetch.status} == 200", "then": [_STEP],
                 "else": [{"id": "note", "action": "log", "config": {"message": "down"}}]}),
    "for_each": ActionSpec(
        for_each, frozenset({"steps"}), FOR_EACH_SCHEMA,
        result_keys=("results", "count", "items_processed", "passed", "failed", "completed"),
        example={"items": [1, 2, 3], "item_name": "user_id",
                 "steps": [{"id": "get_user", "action": "http_request",
                            "config": {"url": "${BASE_URL}/users/${user_id}"}}]}),
    "parallel": ActionSpec(
        parallel, frozenset({"branches"}), PARALLEL_SCHEMA,
        result_keys=("branches", "passed", "failed"),
        example={"branches": [_STEP, [{**_STEP, "id": "get2"}]], "max_concurrent": 2,
                 "fail_fast": True}),
    "run_flow": ActionSpec(run_flow, config_schema=RUN_FLOW_SCHEMA,
                           result_keys=("flow", "status", "outputs"),
                           example={"flow": "login", "input": {"user": "alice"}}),
}
