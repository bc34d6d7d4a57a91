"""What this kernel can encapsulate with: VXLAN and IPIP devices, probed once per process.

Side effects: a throwaway network namespace (`calinet-probe-<pid>-<hex>`), in which a test
device is created; the namespace is deleted at once, pass or fail. The Vagrant VM has both;
the CI machine has VXLAN but no IPIP module ("Unknown device type").
"""

from __future__ import annotations

import os
import secrets
import threading

from orchestrator.host.runner import DEFAULT, Runner

_cache: dict[str, tuple[bool, str]] = {}
_lock = threading.Lock()
_PROBES = {
    "vxlan": "link add calinet-vx type vxlan id 4096 dstport 4789 nolearning",
    # With endpoints: an endpoint-less ipip device is the namespace's own tunl0 (made when
    # the module loads), so adding one fails with "File exists" exactly where IPIP works.
    # TEST-NET addresses, inside the throwaway namespace: nothing is ever sent.
    "ipip": "link add calinet-ipip type ipip local 192.0.2.1 remote 192.0.2.2",
}


def available(kind: str, runner: Runner = DEFAULT) -> tuple[bool, str]:
    """(usable, why not) for "vxlan" or "ipip"."""
    with _lock:
        if kind in _cache:
            return _cache[kind]
        name = f"calinet-probe-{os.getpid()}-{secrets.token_hex(3)}"
        res = runner.run(["ip", "netns", "add", name], check=False, timeout=10)
        if res.returncode != 0:
            # Not a kernel fact (no root, say): not cached, the next call tries again.
            return False, f"cannot make a probe namespace: {res.stderr.strip()}"
        else:
            try:
                r = runner.run(["ip", "-n", name, *_PROBES[kind].split()], check=False,
                               timeout=10)
                out = (r.returncode == 0, (r.stderr or r.stdout).strip())
            finally:
                runner.run(["ip", "netns", "del", name], check=False, timeout=10)
        _cache[kind] = out
        return out
