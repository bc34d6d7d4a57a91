"""Kubernetes resource.Quantity parsing ("100m", "0.5", "64Mi", "129e6", "1G").

Pure. Values are parsed exactly (Fraction) and rounded up the way Quantity.MilliValue()
and Quantity.Value() do, so "0.0001" CPU is 1 millicore and "0.5Ki" is 512 bytes.
"""

from __future__ import annotations

import math
import re
from fractions import Fraction

from orchestrator.errors import ValidationError

_BINARY = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
_DECIMAL = {"n": Fraction(1, 10**9), "u": Fraction(1, 10**6), "m": Fraction(1, 1000), "": 1,
            "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "P": 10**15, "E": 10**18}
_QUANTITY_RE = re.compile(r"^([+-]?)([0-9]+(?:\.[0-9]*)?|\.[0-9]+)"
                          r"(Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE]|[eE][+-]?[0-9]+)?$")
_QUANTITY_HINT = "must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"


def parse_quantity(text: str, field: str | None = None) -> Fraction:
    """Exact value of a quantity string; raises ValidationError on anything k8s would reject."""
    if isinstance(text, bool) or not isinstance(text, (str, int, float)):
        raise ValidationError(f"quantity must be a string or number, got {text!r}", field=field)
    # YAML turns `cpu: 1` / `cpu: 0.5` into numbers; the API server accepts those as well.
    raw = str(text).strip() if not isinstance(text, str) else text
    m = _QUANTITY_RE.match(raw)
    if not m:
        raise ValidationError(f"Invalid value: {raw!r}: quantities {_QUANTITY_HINT}", field=field)
    sign, number, suffix = m.group(1), m.group(2), m.group(3) or ""
    value = Fraction(number)
    if suffix in _BINARY:
        value *= _BINARY[suffix]
    elif suffix in _DECIMAL:
        value *= _DECIMAL[suffix]
    else:
        exponent = int(suffix[1:])
        value *= Fraction(10) ** exponent
    return -value if sign == "-" else value


def _ceil(value: Fraction) -> int:
    return math.ceil(value)


def parse_cpu(text: str, field: str | None = None) -> int:
    """CPU quantity -> millicores, rounded up ("100m" -> 100, "0.5" -> 500, "1" -> 1000)."""
    return _ceil(parse_quantity(text, field) * 1000)


def parse_memory(text: str, field: str | None = None) -> int:
    """Memory quantity -> bytes, rounded up ("64Mi" -> 67108864, "1G" -> 10**9)."""
    return _ceil(parse_quantity(text, field))
