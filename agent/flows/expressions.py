"""A safe expression language for ``assert``, ``when`` and conditions (no eval, no exec).

A tokenizer and a recursive-descent parser build a small tree of tuples that
:func:`evaluate` walks against a mapping of names. It follows expr-lang (TestMesh's
assertion language) where flows use it. Grammar, loosest first::

    ternary := or ("?" ternary ":" ternary)?
    or      := and (("||" | "or") and)*
    and     := not (("&&" | "and") not)*
    not     := ("!" | "not") not | compare
    compare := sum (OP sum)*   OP: == != < > <= >= in, not in, contains,
                                   startsWith, endsWith, matches
    sum     := product (("+" | "-") product)*
    product := coalesce (("*" | "/" | "%") coalesce)*
    coalesce:= unary ("??" unary)*
    unary   := ("-" | "!") unary | postfix
    postfix := primary ("." NAME | "[" ternary "]" | "(" args ")")*
    primary := number | string | true | false | nil | null | NAME | "#" | "." NAME
             | "${" reference "}" | "(" ternary ")" | "[" list "]" | "{" key ":" value, ... "}"

``all/any/none/one/filter/map/count(list, predicate)`` take a predicate in which ``#``
is the element (``{# > 0}`` or ``# > 0``; ``.name`` means ``#.name``). ``${ref}`` reads
a variable, output or step result as interpolation would (its type kept), so
``"${fetch.status} == 200"`` and ``"{{status}} == 'passed'"`` work. Not supported:
``**``/``^``, ``..`` ranges, ``|`` pipes, ``?.`` optional chaining, ``let``, slices
``[a:b]``, ``$env``, and functions not in :data:`agent.flows.functions.FUNCTIONS`.

Error messages name operators, names and types, never values, so they are safe to report.
"""

from __future__ import annotations

import re
from collections import ChainMap
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

from agent.flows.errors import ExpressionError, FlowError
from agent.flows.functions import CLOSURE_FUNCTIONS, FUNCTIONS, apply_binary
from agent.flows.interpolate import MISSING, OS_ENV_KEY, resolve

MAX_LENGTH = 10_000
_TOKEN_RE = re.compile(
    r"""\s*(?:
      (?P<number>\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)
    | (?P<string>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')
    | (?P<ref>\$\{[^{}]*\}|\{\{\s*[A-Za-z_][\w.\[\]]*\s*\}\})
    | (?P<name>[A-Za-z_][A-Za-z0-9_]*)
    | (?P<op>==|!=|<=|>=|&&|\|\||\?\?|[<>!()\[\],.+\-*/%?:#{}])
    )""",
    re.VERBOSE,
)
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\", '"': '"', "'": "'"}
_WORD_OPS = {"in", "contains", "startsWith", "endsWith", "matches"}
_COMPARE_OPS = {"==", "!=", "<", ">", "<=", ">="} | _WORD_OPS
_LITERALS = {"true": True, "false": False, "nil": None, "null": None}
_MISSING = object()


def _unescape(raw: str) -> str:
    return re.sub(r"\\(.)", lambda m: _ESCAPES.get(m.group(1), m.group(1)), raw[1:-1])


def tokenize(source: str) -> list[tuple[str, Any, int, int]]:
    """Split ``source`` into ``(kind, value, start, end)`` tokens, ending with an ``eof``."""
    tokens, pos = [], 0
    while True:
        while pos < len(source) and source[pos].isspace():
            pos += 1
        if pos >= len(source):
            break
        match = _TOKEN_RE.match(source, pos)
        if not match:
            raise ExpressionError(f"unexpected character {source[pos]!r} at position {pos}")
        kind = match.lastgroup or ""
        text = match.group(kind)
        value: Any = text
        if kind == "number":
            value = float(text) if any(c in text for c in ".eE") else int(text)
        elif kind == "string":
            value = _unescape(text)
        elif kind == "ref":
            value = text[2:-2].strip() if text.startswith("{{") else text[2:-1]
        tokens.append((kind, value, match.start(kind), match.end()))
        pos = match.end()
    tokens.append(("eof", None, len(source), len(source)))
    return tokens


class _Parser:
    """Recursive descent over the token list; each method returns a tree node (a tuple)."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.tokens = tokenize(source)
        self.pos = 0

    def peek(self, offset: int = 0) -> tuple[str, Any, int, int]:
        return self.tokens[min(self.pos + offset, len(self.tokens) - 1)]

    def accept(self, *values: str) -> str | None:
        kind, value, _, _ = self.peek()
        if kind in ("op", "name") and value in values:
            self.pos += 1
            return value
        return None

    def expect(self, value: str) -> None:
        if not self.accept(value):
            kind, found, start, _ = self.peek()
            shown = "end of expression" if kind == "eof" else repr(found)
            raise ExpressionError(f"expected {value!r} at position {start}, found {shown}")

    def parse(self) -> tuple:
        node = self.parse_ternary()
        kind, value, start, _ = self.peek()
        if kind != "eof":
            raise ExpressionError(f"unexpected {value!r} at position {start}")
        return node

    def parse_ternary(self) -> tuple:
        node = self.parse_or()
        if self.peek()[0] == "op" and self.accept("?"):
            then = self.parse_ternary()
            self.expect(":")
            return ("if", node, then, self.parse_ternary())
        return node

    def parse_or(self) -> tuple:
        node = self.parse_and()
        while self.accept("||", "or"):
            node = ("or", node, self.parse_and())
        return node

    def parse_and(self) -> tuple:
        node = self.parse_not()
        while self.accept("&&", "and"):
            node = ("and", node, self.parse_not())
        return node

    def parse_not(self) -> tuple:
        if self.peek()[1] in ("!", "not") and self.peek()[0] in ("op", "name"):
            self.pos += 1
            return ("not", self.parse_not())
        return self.parse_compare()

    def parse_compare(self) -> tuple:
        node = self.parse_sum()
        while True:
            kind, value, _, _ = self.peek()
            if kind == "name" and value == "not" and self.peek(1)[1] == "in":
                self.pos += 2
                node = ("not", ("binary", "in", node, self.parse_sum()))
            elif kind in ("op", "name") and value in _COMPARE_OPS:
                self.pos += 1
                node = ("binary", value, node, self.parse_sum())
            else:
                return node

    def parse_sum(self) -> tuple:
        node = self.parse_product()
        while op := self.accept("+", "-"):
            node = ("binary", op, node, self.parse_product())
        return node

    def parse_product(self) -> tuple:
        node = self.parse_coalesce()
        while op := self.accept("*", "/", "%"):
            node = ("binary", op, node, self.parse_coalesce())
        return node

    def parse_coalesce(self) -> tuple:
        node = self.parse_unary()
        while self.accept("??"):
            node = ("coalesce", node, self.parse_unary())
        return node

    def parse_unary(self) -> tuple:
        if self.accept("-"):
            return ("neg", self.parse_unary())
        if self.peek()[0] == "op" and self.accept("!"):
            return ("not", self.parse_unary())
        return self.parse_postfix()

    def parse_postfix(self) -> tuple:
        start = self.peek()[2]
        node = self.parse_primary()
        is_path = node[0] == "name"
        while True:
            if self.accept("."):
                kind, value, _, _ = self.peek()
                if kind != "name":
                    raise ExpressionError(f"expected a field name after '.' in {self.source!r}")
                self.pos += 1
                node = ("member", node, ("lit", value))
            elif self.accept("["):
                node = ("member", node, self.parse_ternary())
                self.expect("]")
            elif node[0] == "name" and node[1] in CLOSURE_FUNCTIONS and self.accept("("):
                node, is_path = self._closure_call(node[1]), False
            elif node[0] == "name" and self.accept("("):
                node, is_path = ("call", node[1], self._items(")")), False
            else:
                break
        if is_path:
            end = self.tokens[self.pos - 1][3]
            return ("path", self.source[start:end].strip(), node)
        return node

    def _items(self, closing: str) -> list[tuple]:
        items: list[tuple] = []
        while not self.accept(closing):
            if items:
                self.expect(",")
            items.append(self.parse_ternary())
        return items

    def _closure_call(self, name: str) -> tuple:
        """``all(list, {predicate})``: the predicate is kept unevaluated, ``#`` bound later."""
        subject = self.parse_ternary()
        self.expect(",")
        if self.accept("{"):
            body = self.parse_ternary()
            self.expect("}")
        else:
            body = self.parse_ternary()
        self.expect(")")
        return ("closure", name, subject, body)

    def _map(self) -> tuple:
        pairs: list[tuple[tuple, tuple]] = []
        while not self.accept("}"):
            if pairs:
                self.expect(",")
            kind, value, _, _ = self.peek()
            if kind in ("name", "string"):
                self.pos += 1
                key: tuple = ("lit", value)
            else:
                self.expect("(")
                key = self.parse_ternary()
                self.expect(")")
            self.expect(":")
            pairs.append((key, self.parse_ternary()))
        return ("map", pairs)

    def parse_primary(self) -> tuple:
        kind, value, start, _ = self.peek()
        self.pos += 1
        if kind in ("number", "string"):
            return ("lit", value)
        if kind == "name" and value in _LITERALS:
            return ("lit", _LITERALS[value])
        if kind == "name" and value not in _WORD_OPS | {"and", "or", "not"}:
            return ("name", value)
        if kind == "ref":
            return ("ref", value)
        if kind == "op" and value == "#":
            return ("name", "#")
        if kind == "op" and value == "." and self.peek()[0] == "name":
            self.pos += 1  # ``.field`` in a predicate: a field of the element
            return ("member", ("name", "#"), ("lit", self.tokens[self.pos - 1][1]))
        if kind == "op" and value == "(":
            node = self.parse_ternary()
            self.expect(")")
            return node
        if kind == "op" and value == "[":
            return ("list", self._items("]"))
        if kind == "op" and value == "{":
            return self._map()
        shown = "end of expression" if kind == "eof" else repr(value)
        raise ExpressionError(f"unexpected {shown} at position {start}")


class Expression:
    """A parsed expression; evaluate it any number of times against different names."""

    def __init__(self, source: str) -> None:
        if len(source) > MAX_LENGTH:
            raise ExpressionError(f"expression longer than {MAX_LENGTH} characters")
        self.source = source
        try:
            self.tree = _Parser(source).parse()
        except RecursionError:
            raise ExpressionError("expression nested too deeply") from None

    def evaluate(self, names: Mapping[str, Any], used: dict[str, Any] | None = None) -> Any:
        """Return the value; when ``used`` is given, record every path read and its value."""
        try:
            return _eval(self.tree, names, used)
        except RecursionError:
            raise ExpressionError("expression nested too deeply") from None


@lru_cache(maxsize=512)
def compile_expression(source: str) -> Expression:
    """Parse ``source`` once (cached) or raise :class:`ExpressionError`."""
    if not isinstance(source, str) or not source.strip():
        raise ExpressionError("an expression must be a non-empty string")
    return Expression(source)


def evaluate(source: str, names: Mapping[str, Any], used: dict[str, Any] | None = None) -> Any:
    """Parse (cached) and evaluate ``source`` against ``names``."""
    return compile_expression(source).evaluate(names, used)


def _eval(node: tuple, names: Mapping[str, Any], used: dict[str, Any] | None) -> Any:
    tag = node[0]
    if tag == "lit":
        return node[1]
    if tag == "path":
        value = _eval(node[2], names, used)
        if used is not None:
            used[node[1]] = value
        return value
    if tag == "name":
        value = names.get(node[1], _MISSING)
        if value is _MISSING:
            raise ExpressionError(f"unknown name {node[1]!r}")
        return value
    if tag == "member":
        return _member(_eval(node[1], names, used), _eval(node[2], names, used))
    if tag == "ref":
        return _reference(node[1], names)
    if tag == "if":
        branch = node[2] if _eval(node[1], names, used) else node[3]
        return _eval(branch, names, used)
    if tag == "coalesce":
        try:
            value = _eval(node[1], names, used)
        except ExpressionError:
            value = None
        return _eval(node[2], names, used) if value is None else value
    if tag == "map":
        return {_eval(k, names, used): _eval(v, names, used) for k, v in node[1]}
    if tag == "closure":
        subject = _eval(node[2], names, used)
        return CLOSURE_FUNCTIONS[node[1]](
            subject, lambda item: _eval(node[3], ChainMap({"#": item}, names), used))
    if tag == "or":
        return _eval(node[1], names, used) or _eval(node[2], names, used)
    if tag == "and":
        return _eval(node[1], names, used) and _eval(node[2], names, used)
    if tag == "not":
        return not _eval(node[1], names, used)
    if tag == "neg":
        return apply_binary("-", 0, _eval(node[1], names, used))
    if tag == "list":
        return [_eval(item, names, used) for item in node[1]]
    if tag == "call":
        function = FUNCTIONS.get(node[1])
        if function is None:
            raise ExpressionError(f"unknown function {node[1]!r}")
        return function(*[_eval(arg, names, used) for arg in node[2]])
    return apply_binary(node[1], _eval(node[2], names, used), _eval(node[3], names, used))


def _reference(reference: str, names: Mapping[str, Any]) -> Any:
    """``${ref}`` inside an expression: resolved like interpolation, type kept."""
    def lookup(name: str) -> Any:
        return names.get(name, MISSING)

    try:
        return resolve(reference, lookup, names.get(OS_ENV_KEY) or {})
    except FlowError as exc:
        raise ExpressionError(str(exc)) from None


def _member(obj: Any, key: Any) -> Any:
    """``obj.key`` / ``obj[key]``: a missing key or index gives nil; nil itself cannot be read."""
    if obj is None:
        raise ExpressionError(f"cannot read {key!r} of nil")
    if isinstance(obj, Mapping):
        return obj.get(key) if isinstance(key, str) else obj.get(str(key))
    if isinstance(obj, list | tuple | str):
        if isinstance(key, bool) or not isinstance(key, int):
            raise ExpressionError(f"a {type(obj).__name__} index must be an integer")
        return obj[key] if -len(obj) <= key < len(obj) else None
    raise ExpressionError(f"cannot read {key!r} of a {type(obj).__name__}")
