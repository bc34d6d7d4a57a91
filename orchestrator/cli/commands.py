"""CLI verbs shared by `calinet <verb>` and the interactive shell of `calinet up`.

Side effects: store reads/writes through the Client; exec and probe enter pod namespaces of a
running testbed. Each function returns the text to print (or raises a CalinetError).
"""

from __future__ import annotations

import ipaddress
import os
import time
from datetime import datetime, timezone

from orchestrator import api
from orchestrator.control.client import split_key
from orchestrator.dns.cluster import resolv_conf_path
from orchestrator.errors import CalinetError, NotFound
from orchestrator.host import naming
from orchestrator.host.runner import DEFAULT
from orchestrator.ipam.store import IPAM
from orchestrator.node.containers import exec_argv, exec_environment, read_logs
from orchestrator.present import printers
from orchestrator.present.describe import describe as describe_text
from orchestrator.traffic import probe


def _now() -> datetime:
    return datetime.now(timezone.utc)


def get(ctx, kind: str, name: str | None = None, *, namespace: str = "default",
        all_namespaces: bool = False, output: str | None = None, selector: str | None = None) -> str:
    info = api.resolve_kind(kind)
    if name:
        key = f"{namespace}/{name}" if info.namespaced else name
        objs = [ctx.client.get(info.key, key)]
    else:
        ns = None if (all_namespaces or not info.namespaced) else namespace
        objs = ctx.client.list(info.key, ns)
    if selector:
        want = _parse_selector(selector)
        objs = [o for o in objs if api.label_selector_matches(want, o["metadata"].get("labels") or {})]
    if output == "yaml":
        return printers.to_yaml(objs if not name else objs[0])
    if output == "json":
        return printers.to_json(objs if not name else objs[0])
    # info.key: Calico's NetworkPolicy is not printed with the Kubernetes columns
    return printers.table(info.key, objs, wide=(output == "wide"), now=_now(),
                          all_namespaces=all_namespaces and info.namespaced, namespace=namespace)


def _parse_selector(text: str) -> dict:
    """kubectl -l: "a=b,c!=d,e" (equality-based) -> LabelSelector."""
    labels, exprs = {}, []
    for part in filter(None, (p.strip() for p in text.split(","))):
        if "!=" in part:
            k, v = part.split("!=", 1)
            exprs.append({"key": k.strip(), "operator": "NotIn", "values": [v.strip()]})
        elif "=" in part:
            k, v = part.replace("==", "=").split("=", 1)
            labels[k.strip()] = v.strip()
        elif part.startswith("!"):
            exprs.append({"key": part[1:], "operator": "DoesNotExist"})
        else:
            exprs.append({"key": part, "operator": "Exists"})
    return {"matchLabels": labels, "matchExpressions": exprs}


def describe(ctx, kind: str, name: str, *, namespace: str = "default") -> str:
    info = api.resolve_kind(kind)
    key = f"{namespace}/{name}" if info.namespaced and "/" not in name else name
    obj = ctx.client.get(info.key, key)
    from orchestrator.present.describe_workloads import RELATED
    related = None
    if info.key in RELATED:
        # What the describer summarises: a Deployment's ReplicaSets, a controller's Pods, a
        # Service's EndpointSlices, a node's Pods (from every namespace).
        ns = None if info.key == "Node" else obj["metadata"].get("namespace")
        related = ctx.client.list(RELATED[info.key], ns)
    # No v1 Event objects are recorded: "Events: <none>", as kubectl prints for a quiet object.
    return describe_text(info.kind, obj, [], now=_now(), related=related)


def apply(ctx, sources: list[str]) -> str:
    lines = []
    for src in sources:
        lines += ctx.client.apply(src)
    return "\n".join(lines)


def delete(ctx, kind: str | None, names: list[str], *, namespace: str = "default",
           files: list[str] | None = None) -> str:
    lines = []
    for f in files or []:
        lines += ctx.client.delete_source(f)
    if kind:
        info = api.resolve_kind(kind)
        if not names:
            raise CalinetError(f"delete {kind}: name the object(s) to delete")
        for n in names:
            key = f"{namespace}/{n}" if info.namespaced and "/" not in n else n
            lines.append(ctx.client.delete(info.key, key))
    return "\n".join(lines)


def label(ctx, kind: str, name: str, pairs: list[str], *, namespace: str = "default") -> str:
    info = api.resolve_kind(kind)
    key = f"{namespace}/{name}" if info.namespaced and "/" not in name else name
    labels = {}
    for p in pairs:
        if p.endswith("-") and "=" not in p:
            labels[p[:-1]] = None
        elif "=" in p:
            k, v = p.split("=", 1)
            labels[k] = v
        else:
            raise CalinetError(f"label {p!r}: expected key=value or key-")
    return ctx.client.label(info.key, key, labels)


def logs(ctx, pod: str, container: str | None = None, *, namespace: str = "default",
         previous: bool = False) -> str:
    key = pod if "/" in pod else f"{namespace}/{pod}"
    obj = ctx.client.get("Pod", key)
    names = [c["name"] for c in obj["spec"]["containers"]]
    if container is None:
        if len(names) > 1:
            raise CalinetError(f"pod {key} has several containers; choose one of: {', '.join(names)}")
        container = names[0]
    if container not in names:
        raise NotFound(f"container {container!r} is not in pod {key}; containers: {', '.join(names)}")
    return read_logs(ctx.state_dir, key, container, previous=previous)


def _netns_of(ctx, key: str) -> str:
    if not ctx.live:
        raise CalinetError("the testbed is not running; exec and probe need a live testbed")
    ns, name = split_key(key)
    pod = ctx.client.get("Pod", f"{ns}/{name}")
    if not (pod.get("status") or {}).get("podIP"):
        raise CalinetError(f"pod {ns}/{name} has no sandbox yet (phase "
                           f"{(pod.get('status') or {}).get('phase', 'Pending')})")
    return naming.pod_netns(ctx.testbed_id, ns, name)


def exec_(ctx, pod: str, argv: list[str], *, namespace: str = "default",
          container: str | None = None):
    """Run argv where the pod's container runs, as `kubectl exec`: its network namespace, its
    environment and its resolv.conf (the same wrapper the kubelet starts containers with)."""
    key = pod if "/" in pod else f"{namespace}/{pod}"
    if not argv:
        raise CalinetError("exec: give a command after --")
    netns = _netns_of(ctx, key)
    ns, name = split_key(key)
    resolv = resolv_conf_path(ctx.state_dir, f"{ns}/{name}")   # there when DNS is on
    env = exec_environment(ctx.client.get("Pod", f"{ns}/{name}"), container)
    argv = exec_argv(list(argv), env, resolv if os.path.exists(resolv) else None)
    return DEFAULT.run(argv, netns=netns, check=False, timeout=3600)


def probe_(ctx, src: str, dst: str, port_proto: str, *, namespace: str = "default",
           timeout: float = 1.0) -> str:
    src_key = src if "/" in src else f"{namespace}/{src}"
    port, _, proto = port_proto.partition("/")
    proto = (proto or "TCP").upper()
    if proto not in ("TCP", "UDP", "SCTP"):
        raise CalinetError(f"probe: protocol {proto!r} is not one of TCP, UDP, SCTP")
    try:
        dst_ip = str(ipaddress.ip_address(dst))
    except ValueError:
        dst_key = dst if "/" in dst else f"{namespace}/{dst}"
        dst_ip = (ctx.client.get("Pod", dst_key).get("status") or {}).get("podIP")
        if not dst_ip:
            raise CalinetError(f"pod {dst_key} has no IP yet") from None
    r = probe.probe(_netns_of(ctx, src_key), dst_ip, int(port), proto, timeout)
    verdict = "connected" if r.ok else "blocked"
    return f"{src_key} -> {dst} {port}/{proto}: {verdict} ({r.detail}, {r.elapsed * 1000:.1f} ms)"


def ipam_show(ctx, **kw) -> str:
    return IPAM(ctx.store).show(**kw)


def ipam_check(ctx) -> tuple[str, int]:
    in_use = {}
    for p in ctx.store.list("Pod"):
        st = p.get("status") or {}
        for ip in {a.get("ip") for a in st.get("podIPs") or []} | {st.get("podIP")}:
            if ip:
                in_use[ip] = f"{p['metadata']['namespace']}/{p['metadata']['name']}"
    from orchestrator.node.encap_agent import tunnel_ips
    return IPAM(ctx.store).check(in_use, tunnel_ips=tunnel_ips(ctx.store))


def _bgp_status(ctx, node: str) -> dict | None:
    from bgp.supervisor import read_status
    ctx.client.get("Node", node)  # NotFound names an unknown node
    return read_status(os.path.join(ctx.state_dir, "bgp", node))


def node_status(ctx, node: str | None = None) -> str:
    """calicoctl node status: of NODE, or of every node (one section each)."""
    from bgp.status import render_node_status
    nodes = [node] if node else [n["metadata"]["name"] for n in ctx.client.list("Node")]
    out = []
    for name in nodes:
        st = _bgp_status(ctx, name) if ctx.live else None
        text = render_node_status(st, time.time())
        out.append(text if node else f"--- {name} ---\n{text}")
    return "\n".join(out).rstrip("\n")


def routes(ctx, node: str) -> str:
    """A node's BGP routes (agent status), or a fabric router's own tables (birdc)."""
    from bgp.status import render_routes
    from topologies.routers import router_report
    if ctx.live and ctx.store.get("Node", node) is None:
        text = router_report(ctx.state_dir, node)
        if text is not None:
            return text.rstrip("\n")
    st = _bgp_status(ctx, node) if ctx.live else None
    if st is None:
        return f"node {node}: no BGP speaker is running (testbed stopped, or started without BGP)"
    return render_routes(st).rstrip("\n")


def validate(sources: list[str]) -> str:
    count = 0
    for src in sources:
        docs = api.load_documents(src)
        objs = api.normalize_all(docs, now="1970-01-01T00:00:00Z")
        count += len(objs)
    return f"{count} object(s) valid"
