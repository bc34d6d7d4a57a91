"""Kubernetes resource quantities ("2", "500m", "4Gi", "1G", "1e3") for node capacity.

Pure. Kept local to topologies (rather than importing orchestrator.api) so the topology
package has no dependency on the API layer.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

from orchestrator.errors import ValidationError

_QUANTITY = re.compile(r"^([0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE]([-+]?[0-9]+))?([A-Za-z]*)$")
_BINARY = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
_DECIMAL = {"": 1, "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "P": 10**15, "E": 10**18}


def parse_quantity(value, fld: str | None = None) -> Decimal:
    """Quantity -> Decimal in base units ("500m" -> 0.5, "1Gi" -> 2**30); ``fld`` names it."""
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise ValidationError(f"{value!r} is not a resource quantity", field=fld)
    m = _QUANTITY.match(str(value).strip())
    suffix = m.group(3) if m else None
    if not m or (suffix not in _BINARY and suffix not in _DECIMAL and suffix != "m"):
        raise ValidationError(f"{value!r} is not a resource quantity (like 2, 500m, 4Gi, 1G)",
                              field=fld)
    try:
        num = Decimal(m.group(1)) * (Decimal(10) ** int(m.group(2) or 0))
    except InvalidOperation:
        raise ValidationError(f"{value!r} is not a resource quantity", field=fld) from None
    if suffix == "m":
        return num / 1000
    return num * (_BINARY.get(suffix) or _DECIMAL[suffix])
