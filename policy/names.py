"""Felix's names for chains, ipsets and mark bits.

Pure. Chain names are at most 28 characters: a longer `prefix + suffix` becomes
`prefix + "_" + base64url(sha256(suffix))` cut to fit (libcalico-go GetLengthLimitedID).
Selector ipsets are `cali40s:` + base64url(sha224("s:" + selector)) cut to 31 characters (the
kernel's ipset name limit); the hashed text here is the selector plus its namespace scope,
which is what Felix's rewritten selector holds. `cali40n:` named-port sets as Felix's;
`cali40c:` CIDR sets are calinet's own (Felix ORs several CIDRs with scratch mark bits instead;
a set is one rule and keeps the rule count independent of the CIDR count). IPv6 sets are the
same with Felix's IPv6 prefix `cali60` (the same hashed text: a selector's IPv4 and IPv6 sets
differ only in the prefix).
"""

from __future__ import annotations

import base64
import hashlib

MAX_CHAIN = 28
MAX_IPSET = 31

# Mark bits, allocated from IptablesMarkMask 0xffff0000 lowest first, as Felix does.
ACCEPT_MARK = 0x10000
PASS_MARK = 0x20000
DROP_MARK = 0x40000
SCRATCH0 = 0x80000
ALL_MARKS = 0xFFFF0000

FORWARD, INPUT, OUTPUT = "cali-FORWARD", "cali-INPUT", "cali-OUTPUT"
PREROUTING = "cali-PREROUTING"
FROM_WL_DISPATCH, TO_WL_DISPATCH = "cali-from-wl-dispatch", "cali-to-wl-dispatch"
WL_TO_HOST = "cali-wl-to-host"


def _b64(digest: bytes) -> str:
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def limited(prefix: str, suffix: str, max_len: int = MAX_CHAIN) -> str:
    if len(prefix) + len(suffix) <= max_len:
        return prefix + suffix
    return prefix + "_" + _b64(hashlib.sha256(suffix.encode()).digest())[:max_len - len(prefix) - 1]


def to_workload(iface: str) -> str:
    return limited("cali-tw-", iface)


def from_workload(iface: str) -> str:
    return limited("cali-fw-", iface)


def policy_in(policy_id: str) -> str:
    return limited("cali-pi-", policy_id)


def policy_out(policy_id: str) -> str:
    return limited("cali-po-", policy_id)


def profile_in(profile: str) -> str:
    return limited("cali-pri-", profile)


def profile_out(profile: str) -> str:
    return limited("cali-pro-", profile)


def _set_name(prefix: str, text: str) -> str:
    return (prefix + _b64(hashlib.sha224(text.encode()).digest()))[:MAX_IPSET]


def set_prefix(family: int = 4) -> str:
    """Felix's ipset prefix for an IP family: cali40 (IPv4), cali60 (IPv6)."""
    return "cali60" if family == 6 else "cali40"


def selector_set(key: str, family: int = 4) -> str:
    return _set_name(set_prefix(family) + "s:", "s:" + key)


def named_port_set(key: str, family: int = 4) -> str:
    return _set_name(set_prefix(family) + "n:", "n:" + key)


def cidr_set(key: str, family: int = 4) -> str:
    return _set_name(set_prefix(family) + "c:", "c:" + key)


def hexmark(bits: int) -> str:
    return f"{bits:#x}"


def mark_set(bits: int) -> tuple[str, ...]:
    """Match: all of ``bits`` set."""
    return ("-m", "mark", "--mark", f"{hexmark(bits)}/{hexmark(bits)}")


def mark_clear(bits: int) -> tuple[str, ...]:
    """Match: all of ``bits`` clear."""
    return ("-m", "mark", "--mark", f"0x0/{hexmark(bits)}")


def set_mark(bits: int) -> tuple[str, ...]:
    return ("-j", "MARK", "--set-xmark", f"{hexmark(bits)}/{hexmark(bits)}")


def clear_mark(bits: int) -> tuple[str, ...]:
    return ("-j", "MARK", "--set-xmark", f"0x0/{hexmark(bits)}")
