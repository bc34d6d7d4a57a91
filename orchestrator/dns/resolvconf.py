"""A pod's /etc/resolv.conf, as the kubelet writes it for dnsPolicy ClusterFirst.

Pure, apart from write(). Pods here share the machine's filesystem, so a container that
should resolve through the cluster DNS runs in a mount namespace of its own where the pod's
file is bind-mounted over /etc/resolv.conf (wrap()): the machine's own file is never touched.
"""

from __future__ import annotations

import os

from orchestrator.dns.records import DOMAIN, search_list

KUBE_DNS_IP = "10.96.0.10"    # kube-dns's ClusterIP in kubeadm clusters (10th of the range)
# ... and in IPv6-primary clusters (kind's fd00:10:96::/112 service subnet, 10th address).
KUBE_DNS_IP6 = "fd00:10:96::a"


def kube_dns_ip(primary_family: int) -> str:
    """kube-dns's ClusterIP: in the primary service family, as kubeadm picks it."""
    return KUBE_DNS_IP6 if primary_family == 6 else KUBE_DNS_IP


def render(namespace: str, nameserver: str = KUBE_DNS_IP, domain: str = DOMAIN) -> str:
    return (f"search {' '.join(search_list(namespace, domain))}\n"
            f"nameserver {nameserver}\noptions ndots:5\n")


def write(path: str, namespace: str, nameserver: str = KUBE_DNS_IP) -> str:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(render(namespace, nameserver))
    os.replace(tmp, path)
    return path


def wrap(argv: list[str], resolv_path: str) -> list[str]:
    """``argv`` run in a private mount namespace with ``resolv_path`` as /etc/resolv.conf."""
    return ["unshare", "--mount", "--propagation", "private", "--", "sh", "-c",
            'mount --bind "$0" /etc/resolv.conf && exec "$@"', resolv_path, *argv]
