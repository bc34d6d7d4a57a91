"""Kubernetes resource.Quantity: parse ("100m", "0.5", "64Mi", "129e6", "1G") and format.

Pure. Values are parsed exactly (Fraction) and rounded up the way Quantity.MilliValue() and
Quantity.Value() do, so "0.0001" CPU is 1 millicore and "0.5Ki" is 512 bytes. Formatting gives
the canonical short forms kubectl prints ("250m", "2", "128Mi").
"""

from __future__ import annotations

import math
import re
from fractions import Fraction

from orchestrator.errors import ValidationError

BINARY_SUFFIXES = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
DECIMAL_SUFFIXES = {"n": Fraction(1, 10**9), "u": Fraction(1, 10**6), "m": Fraction(1, 1000),
                    "": Fraction(1), "k": Fraction(10**3), "M": Fraction(10**6),
                    "G": Fraction(10**9), "T": Fraction(10**12), "P": Fraction(10**15),
                    "E": Fraction(10**18)}
# <signedNumber><suffix>; an "e"/"E" followed by digits is an exponent, a bare "E" is exa.
_QUANTITY_RE = re.compile(r"^([+-]?)([0-9]+(?:\.[0-9]*)?|\.[0-9]+)"
                          r"(Ki|Mi|Gi|Ti|Pi|Ei|[eE][+-]?[0-9]+|[numkMGTPE])?$")
_HINT = "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"


def parse_quantity(text, field: str | None = None) -> Fraction:
    """Exact value of a quantity (string, or int/float as YAML yields); ValidationError if bad."""
    if isinstance(text, bool) or not isinstance(text, (str, int, float)):
        raise ValidationError(f"quantity must be a string or number, got {text!r}", field=field)
    if isinstance(text, float):
        if not math.isfinite(text):
            raise ValidationError(f"Invalid value: {text!r}: {_HINT}", field=field)
        # repr gives the shortest round-tripping decimal ("0.1", not 0.1000000000000000055...).
        raw = repr(text)
    else:
        raw = str(text)
    m = _QUANTITY_RE.match(raw)
    if not m:
        raise ValidationError(f"Invalid value: {raw!r}: {_HINT}", field=field)
    sign, number, suffix = m.group(1), m.group(2), m.group(3) or ""
    value = Fraction(number)
    if suffix in BINARY_SUFFIXES:
        value *= BINARY_SUFFIXES[suffix]
    elif suffix in DECIMAL_SUFFIXES:
        value *= DECIMAL_SUFFIXES[suffix]
    else:
        value *= Fraction(10) ** int(suffix[1:])
    return -value if sign == "-" else value


def _non_negative(value: Fraction, text, field: str | None) -> Fraction:
    if value < 0:
        raise ValidationError(f"Invalid value: {text!r}: must be greater than or equal to 0",
                              field=field)
    return value


def parse_cpu(text, field: str | None = None) -> int:
    """CPU quantity -> millicores, rounded up ("100m" -> 100, "0.5" -> 500, "1" -> 1000)."""
    return math.ceil(_non_negative(parse_quantity(text, field), text, field) * 1000)


def parse_memory(text, field: str | None = None) -> int:
    """Memory (or any count) quantity -> integer units, rounded up ("64Mi" -> 67108864)."""
    return math.ceil(_non_negative(parse_quantity(text, field), text, field))


def format_cpu(millicores: int) -> str:
    """Millicores as kubectl prints them: whole cores plain ("2"), else millicores ("250m")."""
    if millicores % 1000 == 0:
        return str(millicores // 1000)
    return f"{millicores}m"


def format_memory(n: int) -> str:
    """Bytes in the largest binary suffix that divides them exactly ("128Mi"), else plain."""
    if n == 0:
        return "0"
    for suffix, factor in reversed(BINARY_SUFFIXES.items()):
        if n % factor == 0:
            return f"{n // factor}{suffix}"
    return str(n)


def format_decimal(n: int) -> str:
    """An integer in the largest decimal suffix that divides it exactly ("1G", "500k", "7")."""
    if n == 0:
        return "0"
    for suffix in ("E", "P", "T", "G", "M", "k"):
        factor = int(DECIMAL_SUFFIXES[suffix])
        if n % factor == 0:
            return f"{n // factor}{suffix}"
    return str(n)
