"""Field checks shared by the topology loaders (spec.py, fabric.py). Pure."""

from __future__ import annotations

import re

from orchestrator.errors import ValidationError

DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


def err(msg: str, fld: str | None = None) -> ValidationError:
    return ValidationError(msg, field=fld)


def mapping(v, fld: str, keys: set) -> dict:
    """``v`` must be a mapping with no key outside ``keys``."""
    if not isinstance(v, dict):
        raise err(f"must be a mapping, got {type(v).__name__}", fld)
    unknown = sorted(str(k) for k in v if k not in keys)
    if unknown:
        raise err(f"unknown key(s) {', '.join(unknown)} (allowed: {', '.join(sorted(keys))})",
                  fld)
    return v
