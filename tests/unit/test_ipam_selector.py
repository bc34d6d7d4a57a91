"""IPPool nodeSelector evaluator (the supported subset of Calico's selector language)."""

import pytest

from orchestrator.errors import ValidationError
from orchestrator.ipam import pool_selects_node, validate_selector

LABELS = {"zone": "a", "kubernetes.io/hostname": "node-1", "rack": "r1"}


@pytest.mark.parametrize("selector, expected", [
    ("all()", True),
    ("", True),
    (None, True),
    ("has(zone)", True),
    ("has(gpu)", False),
    ("!has(gpu)", True),
    ("zone == 'a'", True),
    ('zone == "b"', False),
    ("zone != 'b'", True),
    ("gpu != 'yes'", True),   # absent label: != matches, as in Calico
    ("gpu == 'yes'", False),
    ("kubernetes.io/hostname == 'node-1'", True),
    ("zone == 'a' && rack == 'r1'", True),
    ("zone == 'a' && rack == 'r2'", False),
    ("zone == 'b' || rack == 'r1'", True),
    ("!(zone == 'a' && has(rack))", False),
    ("has(zone) && (rack == 'r9' || zone == 'a')", True),
    ("  zone=='a'  ", True),
])
def test_selects(selector, expected):
    assert pool_selects_node(selector, LABELS) is expected


def test_no_labels():
    assert pool_selects_node("all()", None) is True
    assert pool_selects_node("has(zone)", {}) is False


@pytest.mark.parametrize("selector", [
    "zone in {'a', 'b'}",
    "global()",
    "zone starts with 'a'",
    "zone == a",
    "zone ==",
    "has(zone",
    "(zone == 'a'",
    "zone == 'a' &&",
    "zone == 'a' & rack == 'r1'",
    "has()",
])
def test_unsupported_or_invalid_syntax_is_rejected(selector):
    with pytest.raises(ValidationError) as err:
        pool_selects_node(selector, LABELS)
    assert err.value.field == "spec.nodeSelector"
    assert repr(selector) in str(err.value)
    with pytest.raises(ValidationError):
        validate_selector(selector)
