"""LabelSelector matching and validation (k8s semantics)."""

import pytest

from orchestrator.api import format_label_selector, label_selector_matches, validate_label_selector
from orchestrator.errors import ValidationError

LABELS = {"app": "web", "tier": "front"}


@pytest.mark.parametrize("selector,labels,expected", [
    ({}, LABELS, True),
    ({}, {}, True),
    (None, LABELS, False),
    ({"matchLabels": {"app": "web"}}, LABELS, True),
    ({"matchLabels": {"app": "db"}}, LABELS, False),
    ({"matchLabels": {"app": "web", "x": "y"}}, LABELS, False),
    ({"matchExpressions": [{"key": "tier", "operator": "In", "values": ["front", "b"]}]},
     LABELS, True),
    ({"matchExpressions": [{"key": "tier", "operator": "In", "values": ["back"]}]},
     LABELS, False),
    ({"matchExpressions": [{"key": "missing", "operator": "In", "values": ["a"]}]},
     LABELS, False),
    ({"matchExpressions": [{"key": "tier", "operator": "NotIn", "values": ["front"]}]},
     LABELS, False),
    ({"matchExpressions": [{"key": "missing", "operator": "NotIn", "values": ["a"]}]},
     LABELS, True),
    ({"matchExpressions": [{"key": "app", "operator": "Exists"}]}, LABELS, True),
    ({"matchExpressions": [{"key": "missing", "operator": "Exists"}]}, LABELS, False),
    ({"matchExpressions": [{"key": "missing", "operator": "DoesNotExist"}]}, LABELS, True),
    ({"matchExpressions": [{"key": "app", "operator": "DoesNotExist"}]}, LABELS, False),
    ({"matchLabels": {"app": "web"},
      "matchExpressions": [{"key": "tier", "operator": "NotIn", "values": ["front"]}]},
     LABELS, False),
    ({"matchLabels": {"app": "web"}}, None, False),
])
def test_matches(selector, labels, expected):
    assert label_selector_matches(selector, labels) is expected


def test_validate_returns_copy():
    sel = {"matchLabels": {"app": "web"},
           "matchExpressions": [{"key": "example.com/tier", "operator": "In", "values": ["a"]}]}
    out = validate_label_selector(sel, "spec.selector")
    assert out == sel and out is not sel


@pytest.mark.parametrize("sel,field,fragment", [
    ({"matchLabels": {"app": "bad value"}}, "spec.selector.matchLabels[app]", "valid label"),
    ({"matchLabels": {"-bad": "x"}}, "spec.selector.matchLabels", "name part"),
    ({"matchExpressions": [{"key": "a", "operator": "Equals", "values": ["x"]}]},
     "spec.selector.matchExpressions[0].operator", "Unsupported value"),
    ({"matchExpressions": [{"key": "a", "operator": "In"}]},
     "spec.selector.matchExpressions[0].values", "must be specified"),
    ({"matchExpressions": [{"key": "a", "operator": "NotIn", "values": []}]},
     "spec.selector.matchExpressions[0].values", "must be specified"),
    ({"matchExpressions": [{"key": "a", "operator": "Exists", "values": ["x"]}]},
     "spec.selector.matchExpressions[0].values", "may not be specified"),
    ({"matchExpressions": [{"operator": "Exists"}]},
     "spec.selector.matchExpressions[0].key", "Required"),
    ({"matchExpressions": [{"key": "a", "operator": "In", "values": ["ok", 3]}]},
     "spec.selector.matchExpressions[0].values[1]", "string"),
    ({"matchLabel": {"a": "b"}}, "spec.selector.matchLabel", "unknown field"),
    ("app=web", "spec.selector", "object"),
])
def test_validate_errors(sel, field, fragment):
    with pytest.raises(ValidationError) as exc:
        validate_label_selector(sel, "spec.selector")
    assert exc.value.field == field
    assert fragment in exc.value.message


def test_format():
    assert format_label_selector(None) == "<none>"
    assert format_label_selector({"matchLabels": {"b": "2", "a": "1"}, "matchExpressions": [
        {"key": "t", "operator": "In", "values": ["y", "x"]},
        {"key": "u", "operator": "NotIn", "values": ["z"]},
        {"key": "e", "operator": "Exists"}, {"key": "d", "operator": "DoesNotExist"}]}) == \
        "a=1,b=2,t in (x,y),u notin (z),e,!d"
