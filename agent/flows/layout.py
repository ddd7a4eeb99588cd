"""Bring a flow document into the canonical layout before validation (TestMesh files too).

TestMesh writes flows as a bare ``{name, steps, ...}`` mapping, or as ``flow:`` with
``steps`` beside it; it keeps ``suite``, ``tags``, ``collection`` as metadata and numbers
steps that have no ``id``. Unknown keys outside an action's ``config`` are dropped with
a warning (reported as a ``flow_warning`` event); inside ``config`` they stay errors.
"""

from __future__ import annotations

import copy
from typing import Any

#: Keys a flow body understands; anything else is metadata.
FLOW_KEYS = ("name", "description", "version", "env", "setup", "steps", "teardown", "timeout")
#: TestMesh's flow metadata: kept, not warned about.
METADATA_KEYS = ("suite", "tags", "collection", "labels", "author", "owner", "metadata",
                 "variables", "id", "workspace_id", "environment")
STEP_KEYS = ("id", "name", "action", "config", "assert", "output", "when", "retry", "timeout",
             "on_error", "report_values")
SECTIONS = (("setup", "setup"), ("steps", "main"), ("teardown", "teardown"))
NESTED_STEP_KEYS = ("then", "else", "steps")


def normalize(document: Any) -> tuple[Any, list[str], dict[str, Any]]:
    """Return ``(document, warnings, metadata)``; the input is never modified."""
    if not isinstance(document, dict):
        return document, [], {}
    document = copy.deepcopy(document)
    warnings: list[str] = []
    if not isinstance(document.get("flow"), dict):
        if "flow" not in document and ("steps" in document or "name" in document):
            document = {"flow": document}
        else:
            return document, warnings, {}
    body = document["flow"]
    for key in [k for k in document if k != "flow"]:
        value = document.pop(key)
        if key in FLOW_KEYS and key not in body:
            body[key] = value  # TestMesh's `flow: {name}` with `steps:` beside it
        else:
            body.setdefault(key, value)
    metadata = {key: body.pop(key) for key in [k for k in body if k not in FLOW_KEYS]}
    warnings += [f"flow: unknown key {key!r} kept as metadata" for key in metadata
                 if key not in METADATA_KEYS]
    for section, phase in SECTIONS:
        if isinstance(body.get(section), list):
            _number_steps(body[section], phase, warnings, f"flow.{section}")
    return document, warnings, metadata


def _number_steps(steps: list[Any], prefix: str, warnings: list[str], where: str) -> None:
    for index, step in enumerate(steps):
        if isinstance(step, dict):
            _normalize_step(step, f"{prefix}_{index}", warnings, f"{where}[{index}]")


def _normalize_step(step: dict[str, Any], default_id: str, warnings: list[str],
                    where: str) -> None:
    if "id" not in step:
        step["id"] = default_id
    for key in [k for k in step if k not in STEP_KEYS]:
        step.pop(key)
        warnings.append(f"{where} (step {step['id']!r}): unknown key {key!r} ignored")
    if isinstance(step.get("assert"), str):
        step["assert"] = [step["assert"]]
    config = step.get("config")
    if not isinstance(config, dict):
        return
    for key in NESTED_STEP_KEYS:
        if isinstance(config.get(key), list):
            _number_steps(config[key], f"{step['id']}_{key}", warnings, f"{where}.config.{key}")
    for index, branch in enumerate(config.get("branches") or []
                                   if step.get("action") == "parallel" else []):
        label = f"{step['id']}_branch{index}"
        if isinstance(branch, list):
            _number_steps(branch, label, warnings, f"{where}.config.branches[{index}]")
        elif isinstance(branch, dict):
            _normalize_step(branch, label, warnings, f"{where}.config.branches[{index}]")
