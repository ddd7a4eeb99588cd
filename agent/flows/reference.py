"""The flow action reference (``docs/flow-actions.md``), generated from the flow JSON Schema.

Run ``python -m agent.flows.reference > docs/flow-actions.md`` after changing an
action; ``tests/agent/flows/test_reference.py`` fails while the file is out of date.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any

import yaml

from agent.flows.actions import ACTIONS, ActionSpec
from agent.flows.functions import CLOSURE_FUNCTIONS, FUNCTIONS
from agent.flows.interpolate import BUILTINS
from agent.flows.schema import FLOW_SCHEMA, STEP_SCHEMA

OPERATORS = ("`==` `!=` `<` `<=` `>` `>=`, `and` `or` `not` `&&` `||` `!`, `in` `not in`, "
             "`contains` `startsWith` `endsWith` `matches` (regex), `+` `-` `*` `/` `%`, "
             "`??` (nil coalescing), `cond ? a : b`, `a.b` `a[0]` `a['k']`, "
             "`[1, 2]` `{k: v}` literals, `${ref}` inside an expression")
UNSUPPORTED = ("`**` / `^`, `..` ranges, `|` pipes, `?.` optional chaining, `let`, "
               "slices `a[1:2]`, `$env`, date functions and any function not listed")

HEADER = """# Flow action reference

Generated from the flow JSON Schema (`agent/flows/schema.py` and each action's
`ActionSpec`) by `python -m agent.flows.reference > docs/flow-actions.md`; a test keeps
it in sync. Unknown keys inside `config` are errors that name the allowed keys;
unknown keys elsewhere are ignored with a warning.
"""


def _type(schema: Mapping[str, Any]) -> str:
    if "enum" in schema:
        return " \\| ".join(f"`{value}`" for value in schema["enum"])
    if "$ref" in schema:
        return "steps" if schema["$ref"].endswith("/steps") else "step"
    kind = schema.get("type")
    if kind is None:
        return "any"
    return " \\| ".join(kind) if isinstance(kind, list) else str(kind)


def _required(spec: ActionSpec) -> tuple[set[str], list[list[str]]]:
    """Always required keys, and alternatives (``oneOf``/``anyOf``: one of them)."""
    schema = spec.config_schema
    alternatives = [sorted({k for option in schema.get(word, []) for k in option.get("required",
                                                                                     [])})
                    for word in ("oneOf", "anyOf") if schema.get(word)]
    return set(schema.get("required", [])), alternatives


def _summary(spec: ActionSpec) -> str:
    doc = inspect.getdoc(spec.run) or ""
    return " ".join(doc.split("\n\n")[0].split())


def action_section(name: str, spec: ActionSpec) -> str:
    """One action: summary, config keys, result keys, an example step."""
    required, alternatives = _required(spec)
    lines = [f"## `{name}`", "", _summary(spec), "", "| config key | type | required |",
             "|---|---|---|"]
    for key, schema in sorted(spec.config_schema.get("properties", {}).items()):
        need = "yes" if key in required else (
            "one of " + ", ".join(f"`{k}`" for k in group)
            if (group := next((g for g in alternatives if key in g), None)) else "")
        lines.append(f"| `{key}` | {_type(schema)} | {need} |")
    results = ", ".join(f"`{key}`" for key in spec.result_keys) or "(none)"
    example = {"id": f"my_{name.replace('.', '_')}", "action": name, "config": dict(spec.example)}
    lines += ["", f"Result keys (reachable as `${{step_id.key}}`): {results}", "", "```yaml",
              yaml.safe_dump([example], sort_keys=False, width=88).rstrip(), "```", ""]
    return "\n".join(lines)


def step_section() -> str:
    """The keys every step and every flow take."""
    flow_keys = FLOW_SCHEMA["properties"]["flow"]["properties"]
    lines = ["## Flow and step keys", "", "Flow: " + ", ".join(f"`{k}`" for k in flow_keys)
             + " (plus metadata such as `suite`, `tags`, `collection`, kept as is).", "",
             "| step key | type |", "|---|---|"]
    for key, schema in STEP_SCHEMA["properties"].items():
        lines.append(f"| `{key}` | {_type(schema)} |")
    lines += ["", "A step without `id` is numbered `main_0`, `setup_1`, `<parent>_then_0`...",
              ""]
    return "\n".join(lines)


def expression_section() -> str:
    """What ``assert``, ``when`` and conditions may use (expr-lang compatible subset)."""
    names = ", ".join(f"`{n}`" for n in sorted(FUNCTIONS))
    closures = ", ".join(f"`{n}`" for n in sorted(CLOSURE_FUNCTIONS))
    builtins = ", ".join(f"`${{{n}}}`" for n in sorted(BUILTINS))
    return "\n".join([
        "## Expressions and references", "",
        f"Operators: {OPERATORS}.", "", f"Functions: {names}.", "",
        f"Predicates (`#` is the element, `.f` means `#.f`): {closures}, "
        "e.g. `all(body.items, {.id > 0})`.", "",
        f"Not supported: {UNSUPPORTED}.", "",
        "A number and a numeric string compare as numbers (`status == '201'` holds for 201).",
        "", f"References: `${{name}}`, `${{step_id.key.path[0]}}`, `${{env.NAME}}`, "
        f"`{{{{NAME}}}}`, built-ins {builtins}.", ""])


def render() -> str:
    """The whole reference as Markdown."""
    parts = [HEADER, step_section(), expression_section()]
    parts += [action_section(name, spec) for name, spec in sorted(ACTIONS.items())]
    return "\n".join(parts).rstrip() + "\n"


if __name__ == "__main__":
    print(render(), end="")
