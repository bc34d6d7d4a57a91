"""Calico's selector language: parse, evaluate, and print in Calico's canonical form.

Pure. Follows libcalico-go's lib/selector (tokenizer, parser, ast): the same grammar and
precedence (``!`` > ``&&`` > ``||``), the same lenient spots (``startswith``, a trailing comma
in a set), and the same canonical string (``Selector.normalized``), which is what Felix hashes
into ipset names (``unique_id``). ``from_label_selector`` turns a Kubernetes LabelSelector into
selector text the way Calico's NetworkPolicy conversion does.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Mapping
from functools import lru_cache
from typing import NamedTuple

from orchestrator.errors import ValidationError

MAX_LENGTH = 1024
# Calico's tokenizer skips only spaces and tabs: a newline in a selector is an error there too.
_BLANKS = " \t"
_KEY_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_./-")
_OPERATORS = "==, !=, in, not in, contains, starts with, ends with"
_OPERAND = "a label, has(...), all(), global(), '!' or '('"


class SelectorError(ValidationError):
    """A selector that does not parse; ``position`` is a 0-based offset into ``text``."""

    def __init__(self, text: str, position: int, reason: str, *, field: str | None = None):
        self.text = text
        self.position = position
        self.reason = reason
        shown = text if len(text) <= 80 else text[:77] + "..."
        super().__init__(f'selector "{shown}": position {position}: {reason}', field=field)


class _Tok(NamedTuple):
    kind: str   # "label", "string", "eof", or the operator itself ("==", "in", "has"...)
    value: str  # label name, string contents, or has()'s label
    pos: int
    end: int


# Words that may follow a label, in the order Calico's tokenizer tries them. Matching is by
# prefix ("a contains'x'" is valid) and the second word may follow without a blank.
_WORD_OPS = (("contains", "", "contains"), ("starts", "with", "starts with"),
             ("ends", "with", "ends with"), ("not", "in", "not in"), ("in", "", "in"))
_FUNCS = (("has(", "has"), ("all(", "all()"), ("global(", "global()"))


def _skip_blanks(text: str, i: int) -> int:
    while i < len(text) and text[i] in _BLANKS:
        i += 1
    return i


def _scan_key(text: str, i: int) -> int:
    while i < len(text) and text[i] in _KEY_CHARS:
        i += 1
    return i


def _tokenize(text: str) -> list[_Tok]:
    toks: list[_Tok] = []
    i = 0
    while True:
        i = _skip_blanks(text, i)
        if i == len(text):
            toks.append(_Tok("eof", "", i, i))
            return toks
        start, c, two = i, text[i], text[i:i + 2]
        after_label = bool(toks) and toks[-1].kind == "label"
        if c in "(){},":
            toks.append(_Tok(c, "", i, i + 1))
            i += 1
        elif c in "\"'":
            close = text.find(c, i + 1)
            if close < 0:
                raise SelectorError(text, i, f"unterminated string: expected a closing {c}")
            toks.append(_Tok("string", text[i + 1:close], i, close + 1))
            i = close + 1
        elif two in ("==", "!=", "&&", "||"):
            toks.append(_Tok(two, "", i, i + 2))
            i += 2
        elif c == "!":
            toks.append(_Tok("!", "", i, i + 1))
            i += 1
        elif c in "=&|":
            raise SelectorError(text, i, f"expected '{c}{c}'")
        elif after_label:
            i = _word_operator(text, i, toks)
        elif any(text.startswith(f, i) for f, _ in _FUNCS):
            i = _function(text, i, toks)
        else:
            i = _scan_key(text, i)
            if i == start:
                raise SelectorError(text, i, f"unexpected character {c!r}, expected {_OPERAND}")
            toks.append(_Tok("label", text[start:i], start, i))


def _word_operator(text: str, i: int, toks: list[_Tok]) -> int:
    for first, second, kind in _WORD_OPS:
        if text.startswith(first, i):
            j = i + len(first)
            if second:
                j = _skip_blanks(text, j)
                if not text.startswith(second, j):
                    raise SelectorError(text, j, f"expected '{second}' after '{first}'")
                j += len(second)
            toks.append(_Tok(kind, "", i, j))
            return j
    raise SelectorError(text, i, f"expected an operator ({_OPERATORS}) after label "
                                 f"{toks[-1].value!r}")


def _function(text: str, i: int, toks: list[_Tok]) -> int:
    opener, kind = next((f, k) for f, k in _FUNCS if text.startswith(f, i))
    j = _skip_blanks(text, i + len(opener))
    key = ""
    if kind == "has":
        end = _scan_key(text, j)
        if end == j:
            raise SelectorError(text, j, "expected a label name inside has(...)")
        key, j = text[j:end], _skip_blanks(text, end)
    if not text.startswith(")", j):
        raise SelectorError(text, j, f"expected ')' to close {opener}")
    toks.append(_Tok(kind, key, i, j + 1))
    return j + 1


def _quoted(value: str) -> str:
    # No escapes exist, so Calico picks the quote the value does not contain.
    quote = "'" if '"' in value else '"'
    return f"{quote}{value}{quote}"


class _Node:
    __slots__ = ()

    def keys(self) -> frozenset[str]:
        return frozenset()


class _Const(_Node):
    """all() (always true) and global(). global() is meant for a rule's namespaceSelector,
    where it selects non-namespaced resources (GlobalNetworkSets, HostEndpoints). Pods are
    always namespaced, so against endpoint labels it matches nothing here; libcalico-go's own
    evaluator returns true, which callers handling namespaceSelector must not rely on."""

    __slots__ = ("_text", "_value")

    def __init__(self, text: str, value: bool):
        self._text, self._value = text, value

    def match(self, labels):
        return self._value

    def text(self):
        return self._text


_ALL = _Const("all()", True)
_GLOBAL = _Const("global()", False)


class _Has(_Node):
    __slots__ = ("key",)

    def __init__(self, key: str):
        self.key = key

    def match(self, labels):
        return self.key in labels

    def text(self):
        return f"has({self.key})"

    def keys(self):
        return frozenset((self.key,))


# operator -> (test on a present value, result when the label is absent). Only != is true for
# an absent label (as is "not in" below): Calico's documented semantics.
_COMPARE = {
    "==": (lambda have, want: have == want, False),
    "!=": (lambda have, want: have != want, True),
    "contains": (lambda have, want: want in have, False),
    "starts with": (lambda have, want: have.startswith(want), False),
    "ends with": (lambda have, want: have.endswith(want), False),
}


class _Compare(_Node):
    __slots__ = ("key", "op", "value", "_test", "_absent")

    def __init__(self, key: str, op: str, value: str):
        self.key, self.op, self.value = key, op, value
        self._test, self._absent = _COMPARE[op]

    def match(self, labels):
        have = labels.get(self.key)
        return self._absent if have is None else self._test(have, self.value)

    def text(self):
        return f"{self.key} {self.op} {_quoted(self.value)}"

    def keys(self):
        return frozenset((self.key,))


class _InSet(_Node):
    __slots__ = ("key", "values", "negated")

    def __init__(self, key: str, values: frozenset[str], negated: bool):
        self.key, self.values, self.negated = key, values, negated

    def match(self, labels):
        have = labels.get(self.key)
        if have is None:
            return self.negated  # "k not in {...}" matches when k is absent
        return (have in self.values) != self.negated

    def text(self):
        items = ", ".join(_quoted(v) for v in sorted(self.values))
        return f"{self.key} {'not in' if self.negated else 'in'} {{{items}}}"

    def keys(self):
        return frozenset((self.key,))


class _Not(_Node):
    __slots__ = ("operand",)

    def __init__(self, operand: _Node):
        self.operand = operand

    def match(self, labels):
        return not self.operand.match(labels)

    def text(self):
        # Calico prints "!" straight before its operand: !(a == 'b') becomes !a == "b".
        return "!" + self.operand.text()

    def keys(self):
        return self.operand.keys()


class _Join(_Node):
    __slots__ = ("operands", "is_and")

    def __init__(self, operands: list[_Node], is_and: bool):
        self.operands, self.is_and = tuple(operands), is_and

    def match(self, labels):
        if self.is_and:
            return all(op.match(labels) for op in self.operands)
        return any(op.match(labels) for op in self.operands)

    def text(self):
        # Always parenthesised and never flattened, as Calico prints And/Or nodes.
        sep = " && " if self.is_and else " || "
        return "(" + sep.join(op.text() for op in self.operands) + ")"

    def keys(self):
        return frozenset().union(*(op.keys() for op in self.operands))


class _Parser:
    def __init__(self, text: str):
        self.text = text
        self.toks = _tokenize(text)
        self.i = 0

    def fail(self, tok: _Tok, expected: str) -> SelectorError:
        found = "" if tok.kind == "eof" else f", found {self.text[tok.pos:tok.end]!r}"
        return SelectorError(self.text, tok.pos, f"expected {expected}{found}")

    def next(self) -> _Tok:
        tok = self.toks[self.i]
        if tok.kind != "eof":
            self.i += 1
        return tok

    def peek(self) -> str:
        return self.toks[self.i].kind

    def root(self) -> _Node:
        if self.peek() == "eof":
            return _ALL
        node = self.or_expr()
        if self.peek() != "eof":
            raise self.fail(self.toks[self.i], "'&&', '||' or the end of the selector")
        return node

    def or_expr(self) -> _Node:
        terms = [self.and_expr()]
        while self.peek() == "||":
            self.next()
            terms.append(self.and_expr())
        return terms[0] if len(terms) == 1 else _Join(terms, is_and=False)

    def and_expr(self) -> _Node:
        terms = [self.operation()]
        while self.peek() == "&&":
            self.next()
            terms.append(self.operation())
        return terms[0] if len(terms) == 1 else _Join(terms, is_and=True)

    def operation(self) -> _Node:
        # Leading "!"s collapse to one boolean, as in Calico: "!!has(a)" prints as "has(a)".
        negated = False
        while self.peek() == "!":
            self.next()
            negated = not negated
        tok = self.next()
        if tok.kind == "has":
            node: _Node = _Has(tok.value)
        elif tok.kind in ("all()", "global()"):
            node = _ALL if tok.kind == "all()" else _GLOBAL
        elif tok.kind == "label":
            node = self.label_operation(tok.value)
        elif tok.kind == "(":
            node = self.or_expr()
            if self.peek() != ")":
                raise self.fail(self.toks[self.i], f"')' to close the '(' at position {tok.pos}")
            self.next()
        else:
            raise self.fail(tok, _OPERAND)
        return _Not(node) if negated else node

    def label_operation(self, key: str) -> _Node:
        op = self.next()
        if op.kind in _COMPARE:
            value = self.next()
            if value.kind != "string":
                raise self.fail(value, "a quoted string")
            return _Compare(key, op.kind, value.value)
        if op.kind in ("in", "not in"):
            return _InSet(key, self.set_literal(op.kind), negated=op.kind == "not in")
        raise self.fail(op, f"an operator ({_OPERATORS}) after label {key!r}")

    def set_literal(self, op: str) -> frozenset[str]:
        brace = self.next()
        if brace.kind != "{":
            raise self.fail(brace, f"'{{' to start the set of values after '{op}'")
        values: list[str] = []
        want = "a quoted string or '}'"
        # Calico accepts "{}" and a trailing comma ("{'a',}"), so this does too.
        while self.peek() == "string":
            values.append(self.next().value)
            if self.peek() != ",":
                want = "',' or '}'"
                break
            self.next()
        close = self.next()
        if close.kind != "}":
            raise self.fail(close, want)
        return frozenset(values)


class Selector:
    """A parsed selector. Immutable; equal (and hashing equal) when ``normalized`` is."""

    __slots__ = ("_root", "normalized", "_keys")

    def __init__(self, root: _Node):
        self._root = root
        self.normalized: str = root.text()
        self._keys = root.keys()

    def matches(self, labels: Mapping[str, str] | None) -> bool:
        """Whether an endpoint with these labels is selected (global() selects none)."""
        return self._root.match(labels or {})

    @property
    def is_all(self) -> bool:
        """True for all(), an empty selector, and spellings of them such as "(all())"."""
        return self._root is _ALL

    @property
    def unique_id(self) -> str:
        """Calico's UniqueID: "s:" + base64url(SHA-224("s:" + normalized)), unpadded. Felix
        names the selector's ipset "cali40" + this, cut to 31 characters."""
        digest = hashlib.sha224(("s:" + self.normalized).encode()).digest()
        return "s:" + base64.urlsafe_b64encode(digest).decode().rstrip("=")

    def label_keys(self) -> frozenset[str]:
        """The label keys the result depends on; labels outside it cannot change it."""
        return self._keys

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Selector) and other.normalized == self.normalized

    def __hash__(self) -> int:
        return hash(self.normalized)

    def __str__(self) -> str:
        return self.normalized

    def __repr__(self) -> str:
        return f"Selector({self.normalized!r})"


@lru_cache(maxsize=4096)
def parse(text: str) -> Selector:
    """Parse selector text; "" (or only blanks) is all(). Raises SelectorError. Cached: the
    policy compiler parses the same few strings over and over."""
    if not isinstance(text, str):
        raise ValidationError(f"selector must be a string, got {type(text).__name__}")
    if len(text) > MAX_LENGTH:
        raise SelectorError(text, MAX_LENGTH, f"selector is longer than {MAX_LENGTH} characters")
    return Selector(_Parser(text).root())


def _literal(value: str) -> str:
    # Calico's conversion always uses single quotes; Kubernetes label values cannot hold one,
    # so the fallback only keeps unvalidated input parseable.
    return f'"{value}"' if "'" in value else f"'{value}'"


def from_label_selector(sel: dict | None) -> str:
    """A Kubernetes LabelSelector as Calico selector text, formatted as Calico's conversion
    (k8sSelectorToCalico) does: matchLabels sorted by key as ``k == 'v'``, then
    matchExpressions in their given order as ``k in { 'a', 'b' }``, ``k not in { ... }``,
    ``has(k)``, ``! has(k)``, joined by " && ". None or {} gives "all()": whether a missing
    selector means "all", "none" or "same namespace" is the caller's business."""
    if not sel:
        return "all()"
    parts = [f"{k} == {_literal(v)}" for k, v in sorted((sel.get("matchLabels") or {}).items())]
    for i, req in enumerate(sel.get("matchExpressions") or []):
        key, op, values = req["key"], req["operator"], list(req.get("values") or [])
        if op in ("In", "NotIn"):
            if not values:
                raise ValidationError(f"operator {op} needs at least one value",
                                      field=f"matchExpressions[{i}].values")
            word = "in" if op == "In" else "not in"
            parts.append(f"{key} {word} {{ {', '.join(_literal(v) for v in values)} }}")
        elif op == "Exists":
            parts.append(f"has({key})")
        elif op == "DoesNotExist":
            parts.append(f"! has({key})")
        else:
            raise ValidationError(f"unknown label selector operator {op!r}",
                                  field=f"matchExpressions[{i}].operator")
    return " && ".join(parts) or "all()"
