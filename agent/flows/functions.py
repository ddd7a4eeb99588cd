"""Operators and built-in functions of the flow expression language, with strict types."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from functools import lru_cache
from typing import Any

from agent.flows.errors import ExpressionError


def type_name(value: Any) -> str:
    """The expression-language name of ``value``'s type (used in error messages)."""
    if value is None:
        return "nil"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list | tuple):
        return "list"
    if isinstance(value, Mapping):
        return "map"
    return type(value).__name__


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def equal(left: Any, right: Any) -> bool:
    """Equality without Python's ``True == 1``: a bool only equals a bool."""
    if isinstance(left, bool) != isinstance(right, bool):
        return False
    return bool(left == right)


@lru_cache(maxsize=256)
def _regex(pattern: str) -> re.Pattern[str]:
    try:
        return re.compile(pattern)
    except re.error as exc:
        raise ExpressionError(f"invalid regular expression: {exc}") from None


def _order(op: str, left: Any, right: Any) -> bool:
    both_numbers = _is_number(left) and _is_number(right)
    if not both_numbers and not (isinstance(left, str) and isinstance(right, str)):
        raise ExpressionError(f"cannot compare {type_name(left)} {op} {type_name(right)}")
    return {"<": left < right, ">": left > right, "<=": left <= right, ">=": left >= right}[op]


def _contains(container: Any, item: Any) -> bool:
    if isinstance(container, str):
        if not isinstance(item, str):
            raise ExpressionError(f"a string cannot contain a {type_name(item)}")
        return item in container
    if isinstance(container, list | tuple):
        return any(equal(element, item) for element in container)
    if isinstance(container, Mapping):
        return item in container
    raise ExpressionError(f"cannot look inside a {type_name(container)}")


def _strings(op: str, left: Any, right: Any) -> tuple[str, str]:
    if not isinstance(left, str) or not isinstance(right, str):
        raise ExpressionError(f"{op} needs strings, got {type_name(left)} and {type_name(right)}")
    return left, right


def _arithmetic(op: str, left: Any, right: Any) -> Any:
    if op == "+" and isinstance(left, str) and isinstance(right, str):
        return left + right
    if op == "+" and isinstance(left, list) and isinstance(right, list):
        return left + right
    if not (_is_number(left) and _is_number(right)):
        raise ExpressionError(f"cannot apply {op} to {type_name(left)} and {type_name(right)}")
    if op in "/%" and right == 0:
        raise ExpressionError("division by zero")
    return {
        "+": lambda: left + right,
        "-": lambda: left - right,
        "*": lambda: left * right,
        "/": lambda: left / right,
        "%": lambda: left % right,
    }[op]()


def apply_binary(op: str, left: Any, right: Any) -> Any:
    """Apply a binary operator to two already evaluated operands."""
    if op == "==":
        return equal(left, right)
    if op == "!=":
        return not equal(left, right)
    if op in ("<", ">", "<=", ">="):
        return _order(op, left, right)
    if op == "in":
        return _contains(right, left)
    if op == "contains":
        return _contains(left, right)
    if op == "startsWith":
        text, prefix = _strings(op, left, right)
        return text.startswith(prefix)
    if op == "endsWith":
        text, suffix = _strings(op, left, right)
        return text.endswith(suffix)
    if op == "matches":
        text, pattern = _strings(op, left, right)
        return _regex(pattern).search(text) is not None
    return _arithmetic(op, left, right)


def _len(value: Any) -> int:
    if isinstance(value, str | list | tuple | Mapping):
        return len(value)
    raise ExpressionError(f"len() of a {type_name(value)}")


def _convert(kind: type) -> Callable[[Any], Any]:
    def convert(value: Any) -> Any:
        try:
            return kind(value)
        except (TypeError, ValueError):
            raise ExpressionError(
                f"cannot convert a {type_name(value)} to {kind.__name__}"
            ) from None

    return convert


def _text_function(name: str) -> Callable[[Any], str]:
    def apply(value: Any) -> str:
        if not isinstance(value, str):
            raise ExpressionError(f"{name}() needs a string, got a {type_name(value)}")
        return getattr(value, name)()

    return apply


def _keys(value: Any) -> list[Any]:
    if not isinstance(value, Mapping):
        raise ExpressionError(f"keys() of a {type_name(value)}")
    return list(value)


FUNCTIONS: dict[str, Callable[..., Any]] = {
    "len": _len,
    "lower": _text_function("lower"),
    "upper": _text_function("upper"),
    "trim": _text_function("strip"),
    "int": _convert(int),
    "float": _convert(float),
    "string": lambda value: "nil" if value is None else str(value),
    "keys": _keys,
}
