"""A small evaluator for IPPool nodeSelector expressions.

Pure. Supports the subset of Calico's selector language pools use in practice: ``all()``,
``has(key)``, ``key == 'value'``, ``key != 'value'``, ``!``, ``&&``, ``||`` and parentheses.
Anything else (``in {...}``, ``starts with``, ``global()``...) raises ValidationError naming
the position, rather than being guessed at. The full selector parser belongs to policy/.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from orchestrator.errors import ValidationError

_TOKEN = re.compile(r"""\s*(?:
    (?P<op>&&|\|\||==|!=|!|\(|\))
  | (?P<str>'[^']*'|"[^"]*")
  | (?P<word>[A-Za-z0-9_./-]+(?:\(\))?)
)""", re.VERBOSE)


def _tokens(text: str) -> list[tuple[str, str, int]]:
    out, pos = [], 0
    while pos < len(text):
        if text[pos:].strip() == "":
            break
        m = _TOKEN.match(text, pos)
        if m is None or m.end() == pos:
            raise _error(text, pos, "unexpected character")
        kind = m.lastgroup
        out.append((kind, m.group(kind), m.start(kind)))
        pos = m.end()
    return out


def _error(text: str, pos: int, what: str) -> ValidationError:
    return ValidationError(f"unsupported or invalid selector {text!r} at offset {pos}: {what} "
                           "(supported: all(), has(k), k == 'v', k != 'v', !, &&, ||, parentheses)",
                           field="spec.nodeSelector")


class _Parser:
    def __init__(self, text: str):
        self.text = text
        self.toks = _tokens(text)
        self.i = 0

    def peek(self, value: str | None = None):
        if self.i >= len(self.toks):
            return None
        tok = self.toks[self.i]
        return tok if value is None or tok[1] == value else None

    def take(self, value: str | None = None):
        tok = self.peek(value)
        if tok is None:
            where = self.toks[self.i][2] if self.i < len(self.toks) else len(self.text)
            raise _error(self.text, where, f"expected {value!r}" if value else "unexpected end")
        self.i += 1
        return tok

    def parse(self):
        node = self.or_expr()
        if self.i != len(self.toks):
            raise _error(self.text, self.toks[self.i][2], f"unexpected {self.toks[self.i][1]!r}")
        return node

    def or_expr(self):
        terms = [self.and_expr()]
        while self.peek("||"):
            self.take()
            terms.append(self.and_expr())
        return terms[0] if len(terms) == 1 else ("or", terms)

    def and_expr(self):
        terms = [self.unary()]
        while self.peek("&&"):
            self.take()
            terms.append(self.unary())
        return terms[0] if len(terms) == 1 else ("and", terms)

    def unary(self):
        if self.peek("!"):
            self.take()
            return ("not", self.unary())
        if self.peek("("):
            self.take()
            node = self.or_expr()
            self.take(")")
            return node
        kind, word, pos = self.take()
        if kind != "word":
            raise _error(self.text, pos, f"unexpected {word!r}")
        if word == "all()":
            return ("all",)
        if word == "has":
            self.take("(")
            key = self.take()
            if key[0] != "word" or key[1].endswith("()"):
                raise _error(self.text, key[2], "expected a label key")
            self.take(")")
            return ("has", key[1])
        if word.endswith("()"):
            raise _error(self.text, pos, f"function {word} is not supported")
        op = self.peek()
        if op is None or op[1] not in ("==", "!="):
            raise _error(self.text, op[2] if op else len(self.text), "expected == or !=")
        self.take()
        value = self.take()
        if value[0] != "str":
            raise _error(self.text, value[2], "expected a quoted value")
        return ("eq" if op[1] == "==" else "ne", word, value[1][1:-1])


def _eval(node, labels: Mapping[str, str]) -> bool:
    op = node[0]
    if op == "all":
        return True
    if op == "has":
        return node[1] in labels
    if op == "eq":
        return labels.get(node[1]) == node[2]
    if op == "ne":
        # Calico: "k != 'v'" also matches resources without label k.
        return labels.get(node[1]) != node[2]
    if op == "not":
        return not _eval(node[1], labels)
    if op == "and":
        return all(_eval(n, labels) for n in node[1])
    return any(_eval(n, labels) for n in node[1])


def validate_selector(selector: str) -> None:
    """Raise ValidationError if ``selector`` is outside the supported subset."""
    if selector and selector.strip():
        _Parser(selector).parse()


def pool_selects_node(selector: str | None, node_labels: Mapping[str, str] | None) -> bool:
    """Whether a pool's nodeSelector matches a node. Empty/None means all(), as in Calico."""
    if selector is None or not selector.strip():
        return True
    return _eval(_Parser(selector).parse(), node_labels or {})
