"""Kubernetes LabelSelector (matchLabels + matchExpressions): validation and matching.

Pure. Semantics follow metav1.LabelSelectorAsSelector: the requirements are ANDed, an empty
selector ({}) matches every object, a missing (None) selector matches nothing, and NotIn /
DoesNotExist match objects that do not carry the key at all.
"""

from __future__ import annotations

from typing import Any

from orchestrator.api.fields import (
    as_list,
    as_map,
    as_str,
    check_known,
    check_label_value,
    check_labels,
    check_qualified_name,
    child,
    each,
    fail,
    guard,
    one_of,
    put,
)

OPERATORS = ("In", "NotIn", "Exists", "DoesNotExist")
_SELECTOR_FIELDS = frozenset({"matchLabels", "matchExpressions"})
_REQUIREMENT_FIELDS = frozenset({"key", "operator", "values"})


def validate_label_selector(sel: Any, field: str) -> dict:
    """Validate a LabelSelector at ``field``; returns a normalized copy. Raises ValidationError."""
    sel = as_map(sel, field)
    check_known(sel, _SELECTOR_FIELDS, field)
    out: dict = {}
    put(out, sel, "matchLabels", field, check_labels)
    put(out, sel, "matchExpressions", field,
        lambda exprs, at: each(as_list(exprs, at), at, _validate_requirement))
    return out


def _validate_requirement(req: Any, path: str) -> dict:
    req = as_map(req, path, required=True)
    check_known(req, _REQUIREMENT_FIELDS, path)
    key = None
    with guard():
        key = as_str(req.get("key"), child(path, "key"), required=True)
        check_qualified_name(key, child(path, "key"))
    op = one_of(req.get("operator"), child(path, "operator"), OPERATORS)
    values_path = child(path, "values")
    values = as_list(req.get("values"), values_path)
    each(values, values_path, _check_value)
    if op in ("In", "NotIn") and not values:
        fail(values_path, "Required value: must be specified when `operator` is 'In' or 'NotIn'")
    if op in ("Exists", "DoesNotExist") and values:
        fail(values_path, "Forbidden: may not be specified when `operator` is 'Exists' or "
                          "'DoesNotExist'")
    out = {"key": key, "operator": op}
    if values:
        out["values"] = list(values)
    return out


def _check_value(v: Any, path: str) -> None:
    if not isinstance(v, str):
        fail(path, f"must be a string, got {v!r}")
    check_label_value(v, path)


def selector_is_empty(sel: dict | None) -> bool:
    return sel is not None and not sel.get("matchLabels") and not sel.get("matchExpressions")


def label_selector_matches(selector: dict | None, labels: dict | None) -> bool:
    """True when ``labels`` satisfy ``selector`` (assumed valid). None selects nothing."""
    if selector is None:
        return False
    labels = labels or {}
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for req in selector.get("matchExpressions") or []:
        key, op = req["key"], req["operator"]
        values = req.get("values") or []
        present = key in labels
        if op == "In":
            ok = present and labels[key] in values
        elif op == "NotIn":
            ok = not present or labels[key] not in values
        elif op == "Exists":
            ok = present
        elif op == "DoesNotExist":
            ok = not present
        else:
            raise ValueError(f"unknown label selector operator {op!r}")
        if not ok:
            return False
    return True


def format_label_selector(selector: dict | None) -> str:
    """kubectl's rendering ("app=web,tier in (a,b),!legacy"); "<none>" for None/empty."""
    if not selector:
        return "<none>"
    parts = [f"{k}={v}" for k, v in sorted((selector.get("matchLabels") or {}).items())]
    for req in selector.get("matchExpressions") or []:
        key, op, values = req["key"], req["operator"], sorted(req.get("values") or [])
        if op == "In":
            parts.append(f"{key} in ({','.join(values)})")
        elif op == "NotIn":
            parts.append(f"{key} notin ({','.join(values)})")
        elif op == "Exists":
            parts.append(key)
        else:
            parts.append(f"!{key}")
    return ",".join(parts) or "<none>"
