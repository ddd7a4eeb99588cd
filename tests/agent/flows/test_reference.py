"""The generated action reference stays in sync with the schema, and its examples load."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.flows.actions import ACTIONS
from agent.flows.reference import render
from agent.flows.schema import load_flow

DOC = Path(__file__).resolve().parents[3] / "docs" / "flow-actions.md"


def test_docs_flow_actions_md_is_generated_from_the_schema() -> None:
    assert DOC.read_text() == render(), (
        "docs/flow-actions.md is stale: run python -m agent.flows.reference > "
        "docs/flow-actions.md")


@pytest.mark.parametrize("name", sorted(ACTIONS))
def test_every_action_is_documented_with_an_example_that_validates(name: str) -> None:
    spec = ACTIONS[name]
    assert spec.example and spec.result_keys, f"{name}: add example and result_keys"
    load_flow({"name": "example", "steps": [
        {"id": "ex", "action": name, "config": dict(spec.example)}]})
    assert f"## `{name}`" in render()
