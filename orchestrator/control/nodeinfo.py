"""What the scheduler reads: pod requests, tolerations and affinity, and NodeInfos built from
Node and Pod manifests (capacity, allocated requests, owners of the pods bound there).

Pure. Bad input raises ValidationError naming the object ("Pod ns/name", "Node name") and the
field ("spec.containers[0].resources.requests.cpu").
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from orchestrator.api.quantity import parse_cpu, parse_memory
from orchestrator.errors import ValidationError

# kube-scheduler's defaults for containers without requests, used only for scoring
# (schedutil.DefaultMilliCPURequest / DefaultMemoryRequest) so best-effort pods still spread.
DEFAULT_CPU_REQUEST = 100
DEFAULT_MEMORY_REQUEST = 200 * 1024 * 1024
# The kubelet's default --max-pods, for Node manifests that do not state a pod capacity.
DEFAULT_MAX_PODS = 110
TAINT_EFFECTS = ("NoSchedule", "PreferNoSchedule", "NoExecute")
TOLERATION_OPERATORS = ("", "Equal", "Exists")
NODE_OPERATORS = ("In", "NotIn", "Exists", "DoesNotExist", "Gt", "Lt")


@dataclass(frozen=True)
class Resources:
    """cpu in millicores, memory in bytes, pods as a count."""
    cpu: int = 0
    memory: int = 0
    pods: int = 0

    def __add__(self, other: "Resources") -> "Resources":
        return Resources(self.cpu + other.cpu, self.memory + other.memory,
                         self.pods + other.pods)


@dataclass
class NodeInfo:
    """What the scheduler knows of a node. ``capacity`` is what pods may use (allocatable);
    ``allocated`` sums the requests of pods bound there (pods = their number);
    ``allocated_nonzero`` is the same with the scoring defaults for unset requests
    (None: same as ``allocated``); ``owner_counts`` maps a controller owner uid to the
    number of its pods on the node."""
    name: str
    labels: dict = field(default_factory=dict)
    taints: list = field(default_factory=list)
    unschedulable: bool = False
    ready: bool = True
    capacity: Resources = Resources(0, 0, DEFAULT_MAX_PODS)
    allocated: Resources = Resources()
    allocated_nonzero: Resources | None = None
    owner_counts: dict = field(default_factory=dict)


@dataclass(frozen=True)
class PodView:
    """The fields of a pod manifest the plugins read, parsed and validated once."""
    key: str
    node_name: str
    node_selector: dict
    affinity_terms: list | None
    tolerations: list
    requests: Resources
    requests_nonzero: Resources
    owner_uid: str | None


def _pod_key(pod: dict) -> str:
    meta = pod.get("metadata") or {}
    return f"Pod {meta.get('namespace', 'default')}/{meta.get('name', '?')}"


def controller_uid(obj: dict) -> str | None:
    """uid of the ownerReference marked controller: true (the ReplicaSet of a replica)."""
    for ref in (obj.get("metadata") or {}).get("ownerReferences") or []:
        if ref.get("controller") and ref.get("uid"):
            return str(ref["uid"])
    return None


def _container_requests(container: dict, path: str) -> tuple[Resources, Resources]:
    resources = container.get("resources") or {}
    # The API server defaults a request to the limit when only the limit is set.
    merged = dict(resources.get("limits") or {})
    merged.update(resources.get("requests") or {})
    cpu = parse_cpu(merged["cpu"], f"{path}.resources.requests.cpu") if "cpu" in merged else None
    mem = (parse_memory(merged["memory"], f"{path}.resources.requests.memory")
           if "memory" in merged else None)
    exact = Resources(cpu or 0, mem or 0)
    nonzero = Resources(DEFAULT_CPU_REQUEST if cpu is None else cpu,
                        DEFAULT_MEMORY_REQUEST if mem is None else mem)
    return exact, nonzero


def pod_requests(pod: dict) -> tuple[Resources, Resources]:
    """(requests, requests with scoring defaults) of a pod, pods=1: the containers' sum, or
    the largest init container if that is larger (init containers run one at a time)."""
    spec = pod.get("spec") or {}
    key = _pod_key(pod)
    try:
        exact, nonzero = Resources(), Resources()
        for i, c in enumerate(spec.get("containers") or []):
            e, n = _container_requests(c, f"spec.containers[{i}]")
            exact, nonzero = exact + e, nonzero + n
        for i, c in enumerate(spec.get("initContainers") or []):
            e, n = _container_requests(c, f"spec.initContainers[{i}]")
            exact = Resources(max(exact.cpu, e.cpu), max(exact.memory, e.memory))
            nonzero = Resources(max(nonzero.cpu, n.cpu), max(nonzero.memory, n.memory))
    except ValidationError as exc:
        raise exc.located(obj=key) from None
    return replace(exact, pods=1), replace(nonzero, pods=1)


def _check_tolerations(tolerations, key: str) -> list:
    if not isinstance(tolerations, list):
        raise ValidationError("must be a list", obj=key, field="spec.tolerations")
    for i, t in enumerate(tolerations):
        path = f"spec.tolerations[{i}]"
        if not isinstance(t, dict):
            raise ValidationError("must be a map", obj=key, field=path)
        op = t.get("operator") or ""
        if op not in TOLERATION_OPERATORS:
            raise ValidationError(f"Unsupported value: {op!r}: supported values: "
                                  "\"Equal\", \"Exists\"", obj=key, field=f"{path}.operator")
        if op == "Exists" and t.get("value"):
            raise ValidationError("value must be empty when `operator` is 'Exists'",
                                  obj=key, field=f"{path}.value")
        if not t.get("key") and op != "Exists":
            raise ValidationError("operator must be Exists when `key` is empty",
                                  obj=key, field=f"{path}.operator")
        effect = t.get("effect") or ""
        if effect and effect not in TAINT_EFFECTS:
            raise ValidationError(f"Unsupported value: {effect!r}", obj=key,
                                  field=f"{path}.effect")
    return tolerations


def _affinity_terms(spec: dict, key: str) -> list | None:
    node_affinity = ((spec.get("affinity") or {}).get("nodeAffinity") or {})
    required = node_affinity.get("requiredDuringSchedulingIgnoredDuringExecution")
    if required is None:
        return None
    path = ("spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution"
            ".nodeSelectorTerms")
    terms = required.get("nodeSelectorTerms") if isinstance(required, dict) else None
    if not isinstance(terms, list):
        raise ValidationError("must be a list", obj=key, field=path)
    for i, term in enumerate(terms):
        if not isinstance(term, dict):
            raise ValidationError("must be a map", obj=key, field=f"{path}[{i}]")
        for part in ("matchExpressions", "matchFields"):
            for j, expr in enumerate(term.get(part) or []):
                where = f"{path}[{i}].{part}[{j}]"
                if not isinstance(expr, dict) or expr.get("operator") not in NODE_OPERATORS:
                    raise ValidationError(f"operator must be one of {', '.join(NODE_OPERATORS)}",
                                          obj=key, field=f"{where}.operator")
    return terms


def pod_view(pod: dict) -> PodView:
    """Parse and validate what the plugins read from a Pod manifest."""
    if not isinstance(pod, dict):
        raise ValidationError(f"a pod must be a mapping, got {type(pod).__name__}")
    spec = pod.get("spec") or {}
    key = _pod_key(pod)
    selector = spec.get("nodeSelector") or {}
    if not isinstance(selector, dict):
        raise ValidationError("must be a map", obj=key, field="spec.nodeSelector")
    requests, nonzero = pod_requests(pod)
    return PodView(key=key, node_name=spec.get("nodeName") or "",
                   node_selector={str(k): str(v) for k, v in selector.items()},
                   affinity_terms=_affinity_terms(spec, key),
                   tolerations=_check_tolerations(spec.get("tolerations") or [], key),
                   requests=requests, requests_nonzero=nonzero,
                   owner_uid=controller_uid(pod))


def _node_taints(node: dict, name: str) -> list:
    taints = (node.get("spec") or {}).get("taints") or []
    out = []
    for i, t in enumerate(taints):
        path = f"spec.taints[{i}]"
        if not isinstance(t, dict) or not t.get("key"):
            raise ValidationError("a taint needs a key", obj=f"Node {name}", field=path)
        if t.get("effect") not in TAINT_EFFECTS:
            raise ValidationError(f"Unsupported value: {t.get('effect')!r}: supported values: "
                                  + ", ".join(f'"{e}"' for e in TAINT_EFFECTS),
                                  obj=f"Node {name}", field=f"{path}.effect")
        out.append({"key": str(t["key"]), "value": str(t.get("value") or ""),
                    "effect": t["effect"]})
    return out


def _node_capacity(node: dict, name: str) -> Resources:
    status = node.get("status") or {}
    # Allocatable is what the scheduler fits against; capacity when a node states only that.
    source = "allocatable" if status.get("allocatable") else "capacity"
    values = status.get(source) or {}
    try:
        cpu = parse_cpu(values["cpu"], f"status.{source}.cpu") if "cpu" in values else 0
        mem = (parse_memory(values["memory"], f"status.{source}.memory")
               if "memory" in values else 0)
        pods = (parse_memory(values["pods"], f"status.{source}.pods")
                if "pods" in values else DEFAULT_MAX_PODS)
    except ValidationError as exc:
        raise exc.located(obj=f"Node {name}") from None
    return Resources(cpu, mem, pods)


def _node_ready(node: dict) -> bool:
    for cond in (node.get("status") or {}).get("conditions") or []:
        if cond.get("type") == "Ready":
            return str(cond.get("status")) == "True"
    return False


def node_infos(nodes: list[dict], pods: list[dict]) -> list[NodeInfo]:
    """NodeInfos from Node manifests plus the pods bound to them (terminated pods excluded,
    as kube-scheduler's informer does). Output follows the order of ``nodes``."""
    infos: dict[str, NodeInfo] = {}
    for node in nodes:
        meta = node.get("metadata") or {}
        name = meta.get("name")
        if not name:
            raise ValidationError("a Node needs metadata.name", field="metadata.name")
        infos[name] = NodeInfo(
            name=name, labels={str(k): str(v) for k, v in (meta.get("labels") or {}).items()},
            taints=_node_taints(node, name),
            unschedulable=bool((node.get("spec") or {}).get("unschedulable")),
            ready=_node_ready(node), capacity=_node_capacity(node, name))
    for pod in pods:
        node_name = (pod.get("spec") or {}).get("nodeName")
        if node_name not in infos:
            continue
        if (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
            continue
        exact, nonzero = pod_requests(pod)
        account(infos[node_name], exact, nonzero, controller_uid(pod))
    return list(infos.values())


def account(info: NodeInfo, exact: Resources, nonzero: Resources, owner: str | None) -> None:
    """Add a pod bound to ``info`` (mutates it)."""
    base_nonzero = info.allocated_nonzero or info.allocated
    info.allocated = info.allocated + exact
    info.allocated_nonzero = base_nonzero + nonzero
    if owner:
        info.owner_counts = dict(info.owner_counts)
        info.owner_counts[owner] = info.owner_counts.get(owner, 0) + 1
