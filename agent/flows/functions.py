"""Operators and built-in functions of the flow expression language, with strict types.

One loosening, for TestMesh flows (whose ``${...}`` always yields text): a number
compared with a numeric string compares as numbers, so a 201 status passes both
``status == 201`` and ``status == '201'``.
"""

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


def as_number(value: Any) -> int | float | None:
    """``value`` as a number when it is one or a numeric string, else None."""
    if _is_number(value):
        return value
    if isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            return None
        return int(number) if number.is_integer() and "." not in value else number
    return None


def _numeric_pair(left: Any, right: Any) -> tuple[Any, Any] | None:
    """Both as numbers when one is a number and the other a numeric string."""
    if _is_number(left) == _is_number(right):
        return None
    a, b = as_number(left), as_number(right)
    return None if a is None or b is None else (a, b)


def equal(left: Any, right: Any) -> bool:
    """Equality without Python's ``True == 1``: a bool only equals a bool."""
    if isinstance(left, bool) != isinstance(right, bool):
        return False
    pair = _numeric_pair(left, right)
    if pair is not None:
        return pair[0] == pair[1]
    return bool(left == right)


@lru_cache(maxsize=256)
def _regex(pattern: str) -> re.Pattern[str]:
    try:
        return re.compile(pattern)
    except re.error as exc:
        raise ExpressionError(f"invalid regular expression: {exc}") from None


def _order(op: str, left: Any, right: Any) -> bool:
    pair = _numeric_pair(left, right)
    if pair is not None:
        left, right = pair
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


def _split(value: Any, separator: Any = " ") -> list[str]:
    text, sep = _strings("split", value, separator)
    return text.split(sep) if sep else list(text)


def _join(value: Any, separator: Any = "") -> str:
    if not isinstance(value, list | tuple) or not isinstance(separator, str):
        raise ExpressionError(f"join() needs a list and a string, got a {type_name(value)}")
    return separator.join(value if all(isinstance(v, str) for v in value) else map(str, value))


def _abs(value: Any) -> Any:
    if not _is_number(value):
        raise ExpressionError(f"abs() of a {type_name(value)}")
    return abs(value)


def _extreme(pick: Callable[..., Any], name: str) -> Callable[..., Any]:
    def apply(*values: Any) -> Any:
        items = list(values[0]) if len(values) == 1 and isinstance(values[0], list) else values
        if not items or not all(_is_number(v) for v in items):
            raise ExpressionError(f"{name}() needs numbers")
        return pick(items)

    return apply


def _edge(index: int) -> Callable[[Any], Any]:
    def apply(value: Any) -> Any:
        if not isinstance(value, list | tuple | str):
            raise ExpressionError(f"first()/last() of a {type_name(value)}")
        return value[index] if value else None

    return apply


def _list_of(value: Any, name: str) -> list[Any]:
    if not isinstance(value, list | tuple):
        raise ExpressionError(f"{name}() needs a list, got a {type_name(value)}")
    return list(value)


#: expr-lang's predicate builtins: ``name(list, predicate)`` with ``#`` the element.
CLOSURE_FUNCTIONS: dict[str, Callable[[Any, Callable[[Any], Any]], Any]] = {
    "all": lambda items, p: all(p(i) for i in _list_of(items, "all")),
    "any": lambda items, p: any(p(i) for i in _list_of(items, "any")),
    "none": lambda items, p: not any(p(i) for i in _list_of(items, "none")),
    "one": lambda items, p: sum(1 for i in _list_of(items, "one") if p(i)) == 1,
    "filter": lambda items, p: [i for i in _list_of(items, "filter") if p(i)],
    "map": lambda items, p: [p(i) for i in _list_of(items, "map")],
    "count": lambda items, p: sum(1 for i in _list_of(items, "count") if p(i)),
}

FUNCTIONS: dict[str, Callable[..., Any]] = {
    "len": _len,
    "lower": _text_function("lower"),
    "upper": _text_function("upper"),
    "trim": _text_function("strip"),
    "int": _convert(int),
    "float": _convert(float),
    "string": lambda value: "nil" if value is None else str(value),
    "keys": _keys,
    "values": lambda value: list(value.values()) if isinstance(value, Mapping) else _keys(value),
    "split": _split,
    "join": _join,
    "abs": _abs,
    "min": _extreme(min, "min"),
    "max": _extreme(max, "max"),
    "first": _edge(0),
    "last": _edge(-1),
    "trimPrefix": lambda text, prefix: _strings("trimPrefix", text, prefix)[0].removeprefix(prefix),
    "trimSuffix": lambda text, suffix: _strings("trimSuffix", text, suffix)[0].removesuffix(suffix),
    "toNumber": lambda value: _to_number(value),
}


def _to_number(value: Any) -> Any:
    number = as_number(value)
    if number is None:
        raise ExpressionError(f"cannot convert a {type_name(value)} to a number")
    return number
