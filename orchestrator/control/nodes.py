"""v1 Node and system Namespace objects derived from the topology. Pure."""

from __future__ import annotations

KUBELET_VERSION = "v1.31.0-calinet"


IPV4_ANNOTATION = "projectcalico.org/IPv4Address"
IPV6_ANNOTATION = "projectcalico.org/IPv6Address"
RR_CLUSTER_ANNOTATION = "projectcalico.org/RouteReflectorClusterID"
AS_ANNOTATION = "projectcalico.org/ASNumber"     # Calico Node spec.bgp.asNumber
# The tunnel addresses calico-node's allocate-tunnel-addrs records (encap_agent writes them).
VXLAN_ADDR_ANNOTATION = "projectcalico.org/IPv4VXLANTunnelAddr"
VXLAN_MAC_ANNOTATION = "projectcalico.org/VXLANTunnelMACAddr"
IPIP_ADDR_ANNOTATION = "projectcalico.org/IPv4IPIPTunnelAddr"


def node_object(spec, ip: str, existing: dict | None = None, *, os_image: str = "",
                kernel: str = "") -> dict:
    """The Node a kubelet would register for this topology node.

    `spec.unschedulable` (cordon) is kept from an existing object so a restart does not
    uncordon a node.
    """
    unschedulable = bool(((existing or {}).get("spec") or {}).get("unschedulable", False))
    cap = spec.capacity.as_resources()
    # Where Calico (Kubernetes datastore) keeps a node's BGP facts: annotations on the Node.
    # Calico writes the address with its subnet's prefix ("172.18.0.2/16"), as autodetected.
    annotations = {IPV4_ANNOTATION: f"{ip}/{spec.prefixlen}"}
    if getattr(spec, "ip6", None):
        annotations[IPV6_ANNOTATION] = f"{spec.ip6}/{spec.prefixlen6}"
    if spec.route_reflector_cluster_id:
        annotations[RR_CLUSTER_ANNOTATION] = spec.route_reflector_cluster_id
    if getattr(spec, "as_number", None) is not None:
        annotations[AS_ANNOTATION] = str(spec.as_number)
    return {
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": spec.name, "labels": dict(spec.labels),
                     "annotations": annotations},
        "spec": {"taints": [t.as_dict() for t in spec.taints],
                 "unschedulable": unschedulable},
        "status": {
            "capacity": cap, "allocatable": dict(cap),
            # Dual-stack: one InternalIP per family, IPv4 first, as the kubelet reports them.
            "addresses": [{"type": "InternalIP", "address": ip},
                          *([{"type": "InternalIP", "address": spec.ip6}]
                            if getattr(spec, "ip6", None) else []),
                          {"type": "Hostname", "address": spec.name}],
            "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady",
                            "message": "kubelet is posting ready status"}],
            "nodeInfo": {"kubeletVersion": KUBELET_VERSION, "operatingSystem": "linux",
                         "architecture": "amd64", "osImage": os_image or "unknown",
                         "kernelVersion": kernel or "unknown",
                         "containerRuntimeVersion": "calinet://netns"},
        },
    }


def host_facts() -> dict:
    """osImage and kernelVersion of the machine (every emulated node shares its kernel)."""
    import platform
    image = "Linux"
    try:
        with open("/etc/os-release") as f:
            for line in f:
                if line.startswith("PRETTY_NAME="):
                    image = line.split("=", 1)[1].strip().strip('"')
    except OSError:
        pass
    return {"os_image": image, "kernel": platform.release()}


def system_namespaces() -> list[dict]:
    return [{"apiVersion": "v1", "kind": "Namespace",
             "metadata": {"name": n, "labels": {"kubernetes.io/metadata.name": n}},
             "spec": {}, "status": {"phase": "Active"}}
            for n in ("default", "kube-system", "kube-public", "kube-node-lease")]
