"""Every derived name calinet uses, in one place.

Pure. Ownership of kernel objects rests on these names: cleanup only ever removes objects
whose names come out of this module (or are recorded in the ledger).
"""

from __future__ import annotations

import hashlib

# Calico's FELIX_INTERFACEPREFIX default.
VETH_PREFIX = "cali"
# Host-side MAC Calico forces on every workload veth.
HOST_VETH_MAC = "ee:ee:ee:ee:ee:ee"
# The gateway pods route through; no interface owns it, the node answers by proxy ARP.
POD_GATEWAY = "169.254.1.1"
# A pod's IPv6 gateway: the host veth's own link-local address, which the kernel derives
# (EUI-64) from HOST_VETH_MAC; Calico's CNI reads it back (hostSideMACAsIPv6LL).
POD_GATEWAY6 = "fe80::ecee:eeff:feee:eeee"
# Named network namespaces of pod sandboxes: "calinet-<testbed id>-<11 hex>".
NETNS_PREFIX = "calinet-"
# Calico's IPAM handle prefix (the CNI network name).
IPAM_NETWORK = "k8s-pod-network"
# Route protocol number Calico's BIRD routes carry ("proto bird" in `ip route`).
RTPROT_BIRD = 12
# The IPIP device: the kernel's fallback tunnel of each namespace, as Felix's IPIP manager
# uses it (no local/remote: every route through it names its outer destination, onlink).
IPIP_DEVICE = "tunl0"


def sha1_hex(text: str) -> str:
    return hashlib.sha1(text.encode()).hexdigest()


def veth_name(namespace: str, pod: str) -> str:
    """Host-side veth name exactly as Calico's VethNameForWorkload: cali + sha1(ns.pod)[:11]."""
    return VETH_PREFIX + sha1_hex(f"{namespace}.{pod}")[:11]


def pod_netns(testbed_id: str, namespace: str, pod: str) -> str:
    """Named netns of a pod sandbox; unique per testbed so parallel testbeds never collide."""
    return f"{NETNS_PREFIX}{testbed_id}-{sha1_hex(f'{namespace}.{pod}')[:11]}"


def ipam_handle(pod_uid: str) -> str:
    """IPAM handle of a pod, as Calico's CNI: <network>.<containerID> (we use the pod UID)."""
    return f"{IPAM_NETWORK}.{pod_uid}"


def switch_name(testbed_id: str, index: int) -> str:
    """Underlay bridge name: lives in the root namespace, so it carries the testbed id.

    Mininet names switch ports "<switch>-ethN"; with a 4-hex testbed id this stays within
    the kernel's 15-character IFNAMSIZ limit ("cnab12s9-eth123", "cnab12s99-eth99").
    """
    return f"cn{testbed_id}s{index}"


def is_testbed_id(text: str) -> bool:
    """Testbed ids are 4 lowercase hex digits (short: they go into interface names)."""
    return len(text) == 4 and all(c in "0123456789abcdef" for c in text)
