"""BGP AS numbers as Calico accepts them (pure): shared by the BGP objects and the topology's
fabric routers, so a node's, a BGPPeer's and a ToR's AS are checked by one rule."""

from __future__ import annotations

from orchestrator.errors import ValidationError

AS_MAX = 4294967295


def parse_as_number(value, *, obj: str, field_name: str) -> int:
    """AS numbers as Calico accepts them: 1..4294967295, plain or dotted ("1.10" = 65546)."""
    text = str(value).strip() if not isinstance(value, bool) else ""
    try:
        if "." in text:
            high, low = text.split(".")
            if not (high.isdigit() and low.isdigit()) or int(high) > 65535 or int(low) > 65535:
                raise ValueError
            number = int(high) * 65536 + int(low)
        else:
            if not text.isdigit():
                raise ValueError
            number = int(text)
    except ValueError:
        raise ValidationError(f"invalid AS number {value!r} (1..{AS_MAX}, plain or dotted "
                              "like 1.10)", obj=obj, field=field_name) from None
    if not 1 <= number <= AS_MAX:
        raise ValidationError(f"AS number {value!r} out of range 1..{AS_MAX}",
                              obj=obj, field=field_name)
    return number
