"""kube-proxy in iptables mode, as a pure compiler: Services + EndpointSlices -> nat chains.

Pure. ``model`` reads the API objects into service ports with their ready endpoints;
``rules`` lays them out exactly as kube-proxy's iptables proxier does (KUBE-SERVICES,
KUBE-SVC-*, KUBE-SEP-*, KUBE-EXT-*, KUBE-NODEPORTS, KUBE-MARK-MASQ, KUBE-POSTROUTING);
``render`` turns them into `iptables-restore --noflush -t nat` text, whole or as a difference.
The applier is orchestrator.node.kubeproxy_agent.
"""

from kubeproxy.model import Endpoint, ServicePort, service_ports
from kubeproxy.render import NatState, parse_nat_save, render_full, render_nat
from kubeproxy.rules import NatTable, compile_nat, endpoint_chain, external_chain, service_chain

__all__ = ["Endpoint", "NatState", "NatTable", "ServicePort", "compile_nat", "endpoint_chain",
           "external_chain", "parse_nat_save", "render_full", "render_nat", "service_chain",
           "service_ports"]
