"""The nat table kube-proxy's iptables proxier writes, from service ports.

Pure. Layout and rule shapes follow pkg/proxy/iptables/proxier.go (Kubernetes 1.26+):

  PREROUTING, OUTPUT -> KUBE-SERVICES: per service port `-d <clusterIP> --dport <port>`
      -> KUBE-SVC-<hash>; last, `--dst-type LOCAL` -> KUBE-NODEPORTS
  KUBE-NODEPORTS: `--dport <nodePort>` -> KUBE-EXT-<hash> (mark for SNAT, then KUBE-SVC-<hash>)
  KUBE-SVC-<hash>: traffic from outside the cluster CIDR marked for SNAT; with ClientIP
      affinity, `-m recent --rcheck` per endpoint first; then endpoint i of n is chosen with
      `-m statistic --mode random --probability 1/(n-i)`, the last one unconditionally
  KUBE-SEP-<hash>: hairpin (source is the endpoint itself) marked for SNAT; DNAT to ip:port
  KUBE-MARK-MASQ sets 0x4000; POSTROUTING -> KUBE-POSTROUTING masquerades what carries it.

Chain names: the prefix + the first 16 characters of base32(sha256(...)), of
"<ns>/<svc>:<port name>" + lower-case protocol (KUBE-SVC / KUBE-EXT), + "ip:port" (KUBE-SEP).
A service port without ready endpoints gets no nat rules (kube-proxy rejects it in the
filter table, which calinet does not write: such traffic finds no DNAT and is not answered).
The IPv6 table (ip6tables, ``family=6``) has the same chains; addresses are /128 and DNAT
targets "[ip]:port", as the IPv6 proxier writes them.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass, field

from kubeproxy.model import Endpoint, ServicePort

MASQ_MARK = "0x4000"        # kube-proxy's --iptables-masquerade-bit 14
SERVICES, NODEPORTS = "KUBE-SERVICES", "KUBE-NODEPORTS"
MARK_MASQ, POSTROUTING = "KUBE-MARK-MASQ", "KUBE-POSTROUTING"
CHAIN_PREFIX = "KUBE-"
# The jumps from the kernel's nat chains, as kube-proxy ensures them (inserted first).
HOOKS: tuple[tuple[str, str], ...] = (
    ("PREROUTING", f'-m comment --comment "kubernetes service portals" -j {SERVICES}'),
    ("OUTPUT", f'-m comment --comment "kubernetes service portals" -j {SERVICES}'),
    ("POSTROUTING", f'-m comment --comment "kubernetes postrouting rules" -j {POSTROUTING}'),
)


def _hash16(text: str) -> str:
    return base64.b32encode(hashlib.sha256(text.encode()).digest()).decode()[:16]


def service_chain(svc_port_name: str, protocol: str) -> str:
    return "KUBE-SVC-" + _hash16(svc_port_name + protocol.lower())


def external_chain(svc_port_name: str, protocol: str) -> str:
    return "KUBE-EXT-" + _hash16(svc_port_name + protocol.lower())


def endpoint_chain(svc_port_name: str, protocol: str, endpoint: str) -> str:
    return "KUBE-SEP-" + _hash16(svc_port_name + protocol.lower() + endpoint)


@dataclass
class NatTable:
    """Chains in kube-proxy's write order: name -> rules (the words after `-A <chain>`)."""
    chains: dict[str, list[str]] = field(default_factory=dict)
    hooks: tuple[tuple[str, str], ...] = HOOKS

    def add(self, chain: str, rule: str) -> None:
        self.chains.setdefault(chain, []).append(rule)

    def rule_count(self) -> int:
        return sum(len(r) for r in self.chains.values())


def _probability(n: int) -> str:
    # proxier.go computeProbability: fmt.Sprintf("%0.10f", 1.0/float64(n))
    return f"{1.0 / n:0.10f}"


def compile_nat(ports: list[ServicePort], cluster_cidr: str | None = None,
                family: int = 4) -> NatTable:
    """The whole set of KUBE- nat chains for ``ports`` (the same on every node), for the
    iptables (``family`` 4) or the ip6tables (6) nat table.

    ``cluster_cidr``: the pod network (kube-proxy's --cluster-cidr): traffic to a ClusterIP
    from outside it (a node's own processes) is masqueraded so replies come back through
    this node. None: no such rule (kube-proxy without a local-traffic detector)."""
    t = NatTable()
    for chain in (SERVICES, NODEPORTS, POSTROUTING, MARK_MASQ):
        t.chains[chain] = []
    t.add(POSTROUTING, f"-m mark ! --mark {MASQ_MARK}/{MASQ_MARK} -j RETURN")
    t.add(POSTROUTING, f"-j MARK --xor-mark {MASQ_MARK}")
    t.add(POSTROUTING, '-m comment --comment "kubernetes service traffic requiring SNAT" '
                       "-j MASQUERADE --random-fully")
    t.add(MARK_MASQ, f"-j MARK --or-mark {MASQ_MARK}")
    host = "/128" if family == 6 else "/32"
    for sp in ports:
        if sp.endpoints:
            _service(t, sp, cluster_cidr, host)
    t.add(SERVICES, '-m comment --comment "kubernetes service nodeports; NOTE: this must be '
                    f'the last rule in this chain" -m addrtype --dst-type LOCAL -j {NODEPORTS}')
    return t


def _service(t: NatTable, sp: ServicePort, cluster_cidr: str | None, host: str) -> None:
    name, proto = sp.svc_port_name, sp.protocol.lower()
    svc = service_chain(name, proto)
    match = f"-m {proto} -p {proto} -d {sp.cluster_ip}{host} --dport {sp.port}"
    t.add(SERVICES, f'-m comment --comment "{name} cluster IP" {match} -j {svc}')
    if sp.node_port:
        ext = external_chain(name, proto)
        t.add(NODEPORTS, f"-m comment --comment {name} -m {proto} -p {proto} "
                         f"--dport {sp.node_port} -j {ext}")
        t.add(ext, f'-m comment --comment "masquerade traffic for {name} external '
                   f'destinations" -j {MARK_MASQ}')
        t.add(ext, f"-j {svc}")
    t.chains[svc] = []
    if cluster_cidr:
        t.add(svc, f'-m comment --comment "{name} cluster IP" {match} ! -s {cluster_cidr} '
                   f"-j {MARK_MASQ}")
    seps = [(ep, endpoint_chain(name, proto, str(ep))) for ep in sp.endpoints]
    if sp.affinity_seconds:
        for ep, sep in seps:
            t.add(svc, f'-m comment --comment "{name} -> {ep}" -m recent --name {sep} '
                       f"--rcheck --seconds {sp.affinity_seconds} --reap -j {sep}")
    n = len(seps)
    for i, (ep, sep) in enumerate(seps):
        stat = (f"-m statistic --mode random --probability {_probability(n - i)} "
                if i < n - 1 else "")
        t.add(svc, f'-m comment --comment "{name} -> {ep}" {stat}-j {sep}')
    for ep, sep in seps:
        _endpoint(t, sp, ep, sep, host)


def _endpoint(t: NatTable, sp: ServicePort, ep: Endpoint, sep: str, host: str) -> None:
    name, proto = sp.svc_port_name, sp.protocol.lower()
    t.add(sep, f"-m comment --comment {name} -s {ep.ip}{host} -j {MARK_MASQ}")
    recent = f"-m recent --name {sep} --set " if sp.affinity_seconds else ""
    t.add(sep, f"-m comment --comment {name} {recent}-m {proto} -p {proto} "
               f"-j DNAT --to-destination {ep}")
