"""The cluster DNS add-on of a testbed: the kube-system/coredns Deployment and the kube-dns
Service (ClusterIP 10.96.0.10), each pod's resolv.conf, and lookups from inside a pod.

Side effects: resolv.conf files under <state>/pods/; DNS queries sent from a pod's network
namespace (setns thread) to the kube-dns Service address.
"""

from __future__ import annotations

import os

from orchestrator.dns import resolvconf
from orchestrator.dns.records import candidates

SYSTEM_NAMESPACE = "kube-system"


def manifests(store_path: str, cluster_ip: str = resolvconf.KUBE_DNS_IP) -> list[dict]:
    labels = {"k8s-app": "kube-dns"}
    ports = [{"name": "dns", "containerPort": 53, "protocol": "UDP"},
             {"name": "dns-tcp", "containerPort": 53, "protocol": "TCP"}]
    return [
        {"apiVersion": "apps/v1", "kind": "Deployment",
         "metadata": {"name": "coredns", "namespace": SYSTEM_NAMESPACE, "labels": labels},
         "spec": {"replicas": 1, "selector": {"matchLabels": labels},
                  "template": {"metadata": {"labels": labels},
                               "spec": {"dnsPolicy": "Default", "containers": [
                                   {"name": "coredns",
                                    "image": "registry.k8s.io/coredns/coredns:v1.11.1",
                                    "env": [{"name": "CALINET_STORE", "value": store_path}],
                                    "ports": ports}]}}}},
        {"apiVersion": "v1", "kind": "Service",
         "metadata": {"name": "kube-dns", "namespace": SYSTEM_NAMESPACE, "labels": labels},
         "spec": {"clusterIP": cluster_ip, "selector": labels,
                  "ports": [{"name": "dns", "port": 53, "protocol": "UDP", "targetPort": 53},
                            {"name": "dns-tcp", "port": 53, "protocol": "TCP",
                             "targetPort": 53}]}},
    ]


def resolv_conf_path(state_dir: str, pod_key: str) -> str:
    """Where the pod's resolv.conf lives under the state dir (written by ClusterDNS)."""
    ns, _, name = pod_key.partition("/")
    return os.path.join(state_dir, "pods", ns, name, "resolv.conf")


class ClusterDNS:
    def __init__(self, state_dir: str, nameserver: str = resolvconf.KUBE_DNS_IP):
        self.state_dir, self.nameserver = state_dir, nameserver

    def resolv_path(self, pod_key: str) -> str | None:
        """The pod's resolv.conf (written on first use); None for kube-system's own DNS."""
        ns, _, name = pod_key.partition("/")
        if ns == SYSTEM_NAMESPACE and name.startswith("coredns"):
            return None
        path = resolv_conf_path(self.state_dir, pod_key)
        if not os.path.exists(path):
            resolvconf.write(path, ns, self.nameserver)
        return path

    def resolve(self, netns_path: str, namespace: str, name: str, rdtype: str = "A",
                timeout: float = 2.0) -> list[str]:
        """What a pod's resolver finds for ``name`` (search list, ndots:5): addresses (or
        rdata text), [] when no candidate exists."""
        import dns.message
        import dns.query
        import dns.rcode

        from orchestrator.host.netns import run_in

        def ask() -> list[str]:
            for cand in candidates(name, namespace):
                q = dns.message.make_query(cand, rdtype)
                r = dns.query.udp(q, self.nameserver, timeout=timeout)
                if r.rcode() == dns.rcode.NOERROR and r.answer:
                    return [rd.to_text() for rrset in r.answer for rd in rrset]
            return []
        return run_in(netns_path, ask, timeout=timeout * 5 + 2)
