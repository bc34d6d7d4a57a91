"""The API-server side of apply / delete / label / get, working on a store.

Side effects: writes to the store only. Used by the in-process `Testbed` and by CLI commands
run from another terminal against a running testbed's state directory (as kubectl against a
cluster). Every write is validated first and done in one transaction: an invalid document
rejects the whole apply and nothing changes.
"""

from __future__ import annotations

import copy
import ipaddress

from orchestrator import api
from orchestrator.api.bgp import check_peer_against_cluster
from orchestrator.api.ippool import check_pool_overlap
from orchestrator.control.store import now_rfc3339
from orchestrator.errors import NotFound, ValidationError

# Pod spec fields Kubernetes lets an update change (everything else is immutable).
_POD_MUTABLE = ("activeDeadlineSeconds", "tolerations", "terminationGracePeriodSeconds")


def split_key(key: str, default_ns: str = "default") -> tuple[str, str]:
    if "/" in key:
        ns, name = key.split("/", 1)
        return ns, name
    return default_ns, key


def resource_name(obj: dict) -> str:
    """kubectl's `kind.group` prefix: pod, deployment.apps, ippool.projectcalico.org."""
    group = obj.get("apiVersion", "v1").rpartition("/")[0]
    return obj["kind"].lower() + (f".{group}" if group else "")


class Client:
    def __init__(self, store, *, clock=now_rfc3339, reserved: dict | None = None,
                 admission=(), allocators=(), peer_scope=None):
        self.store = store
        # Where BGPPeer peerIPs may point (ClusterSpec.peer_scope); default the underlay.
        self.peer_scope = peer_scope
        # Fill server-assigned fields (a Service's clusterIP, nodePorts) inside the apply's
        # transaction: allocate(store, obj, old) before the write, release(store, obj) on
        # delete; ValidationError rejects the whole apply. serviceips.ServiceIPAllocator.
        self.allocators = list(allocators)
        self.clock = clock
        # Checks run inside an apply's transaction, after every object was written and
        # before the commit: callable(store, objects); a ValidationError rolls it all back.
        self.admission = list(admission)
        # Networks pods must never be addressed from (the underlay): name -> CIDR.
        self.reserved = {k: ipaddress.ip_network(v) for k, v in (reserved or {}).items()}

    # -- apply ---------------------------------------------------------------------------

    def apply(self, source) -> list[str]:
        """kubectl apply: returns lines like 'pod/web-0 created' / 'configured' / 'unchanged'."""
        docs = api.load_documents(source)
        objs = api.normalize_all(docs, now=self.clock())
        out = []
        with self.store.transaction():
            namespaces = {o["metadata"]["name"] for o in objs if o["kind"] == "Namespace"}
            for obj, doc in zip(objs, docs):
                info = api.resolve_kind(api.kind_key(obj))
                ns = obj["metadata"].get("namespace", "") if info.namespaced else ""
                where = dict(source=getattr(doc, "source", None), index=getattr(doc, "index", None),
                             obj=f"{obj['kind']} {ns + '/' if ns else ''}{obj['metadata']['name']}")
                if ns and ns not in namespaces:
                    nso = self.store.get("Namespace", ns)
                    if nso is None:
                        raise ValidationError(f'namespaces "{ns}" not found', field="metadata.namespace", **where)
                    if nso["metadata"].get("deletionTimestamp"):
                        raise ValidationError(f'namespace "{ns}" is being terminated',
                                              field="metadata.namespace", **where)
                if obj["kind"] == "IPPool":
                    try:
                        check_pool_overlap(obj, self.store.list("IPPool"))
                    except ValidationError as exc:
                        raise exc.located(**where) from None
                    net = ipaddress.ip_network(obj["spec"]["cidr"])
                    for what, cidr in self.reserved.items():
                        if net.version == cidr.version and net.overlaps(cidr):
                            raise ValidationError(
                                f"{obj['spec']['cidr']} overlaps the {what} {cidr}: pods "
                                "there would shadow node addresses", field="spec.cidr", **where)
                if obj["kind"] == "BGPPeer" and "underlay" in self.reserved:
                    try:  # the node it names exists, its peerIP is reachable from the nodes
                        check_peer_against_cluster(
                            obj, [n["metadata"]["name"] for n in self.store.list("Node")],
                            self.peer_scope or self.reserved["underlay"])
                    except ValidationError as exc:
                        raise exc.located(**where) from None
                for alloc in self.allocators:
                    if obj["kind"] in getattr(alloc, "KINDS", ()):
                        try:
                            alloc.allocate(self.store, obj, self.store.get(
                                api.kind_key(obj), obj["metadata"]["name"], ns))
                        except ValidationError as exc:
                            raise exc.located(**where) from None
                out.append(self._apply_one(obj, info, ns, where))
            for check in self.admission:
                try:
                    check(self.store, objs)
                except ValidationError as exc:
                    first = next(((o, d) for o, d in zip(objs, docs)
                                  if o["kind"] in getattr(check, "KINDS", ())), None)
                    if first is None:
                        raise
                    o, d = first
                    raise ValidationError(
                        f"rejected, nothing applied: {exc}",
                        source=getattr(d, "source", None), index=getattr(d, "index", None),
                        obj=f"{o['kind']} {o['metadata']['name']}") from None
        return out

    def _apply_one(self, obj: dict, info, ns: str, where: dict) -> str:
        name = obj["metadata"]["name"]
        label = f"{resource_name(obj)}/{name}"
        old = self.store.get(api.kind_key(obj), name, ns)
        if old is None:
            self.store.create(obj)
            return f"{label} created"
        new = copy.deepcopy(old)
        self._check_immutable(obj, old, where)
        meta = new["metadata"]
        for field in ("labels", "annotations"):
            if obj["metadata"].get(field) is not None or field in meta:
                meta[field] = obj["metadata"].get(field) or {}
        if "spec" in obj:
            spec = copy.deepcopy(obj["spec"])
            if obj["kind"] == "Pod" and old["spec"].get("nodeName"):
                spec["nodeName"] = old["spec"]["nodeName"]  # set by the scheduler, not the user
            new["spec"] = spec
        for field in ("subsets", "addressType", "endpoints", "ports"):   # Endpoints(Slice)
            if field in obj and "spec" not in obj:
                new[field] = copy.deepcopy(obj[field])
        new["metadata"].pop("resourceVersion", None)
        stored = self.store.update(new)
        changed = stored["metadata"]["resourceVersion"] != old["metadata"]["resourceVersion"]
        return f"{label} {'configured' if changed else 'unchanged'}"

    @staticmethod
    def _check_immutable(obj: dict, old: dict, where: dict) -> None:
        kind = obj["kind"]
        if kind == "Pod":
            skip = _POD_MUTABLE + ("nodeName",)
            a = copy.deepcopy({k: v for k, v in old["spec"].items() if k not in skip})
            b = copy.deepcopy({k: v for k, v in obj["spec"].items() if k not in skip})
            for c in a.get("containers", []) + b.get("containers", []):
                c.pop("image", None)
            if a != b:
                raise ValidationError(
                    "Forbidden: pod updates may not change fields other than "
                    "`spec.containers[*].image`, `spec.activeDeadlineSeconds`, "
                    "`spec.tolerations` (only additions) or "
                    "`spec.terminationGracePeriodSeconds`", field="spec", **where)
        if kind == "IPPool":
            for f in ("cidr", "blockSize"):
                if old["spec"].get(f) != obj["spec"].get(f):
                    raise ValidationError(f"field is immutable (was {old['spec'].get(f)!r})",
                                          field=f"spec.{f}", **where)
        if kind in ("Deployment", "ReplicaSet"):
            if old["spec"].get("selector") != obj["spec"].get("selector"):
                raise ValidationError("field is immutable", field="spec.selector", **where)

    # -- delete / label ------------------------------------------------------------------

    def delete(self, kind: str, key: str) -> str:
        with self.store.transaction():
            return self._delete(kind, key)

    def _delete(self, kind: str, key: str) -> str:
        info = api.resolve_kind(kind)
        ns, name = split_key(key) if info.namespaced else ("", key)
        obj = self.store.get(info.key, name, ns)
        if obj is None:
            raise NotFound(f'{info.kind} "{key}" not found')
        if info.kind == "Pod" and obj["spec"].get("nodeName"):
            self._mark(obj)  # the node's kubelet tears the sandbox down, then removes it
        elif info.kind == "Namespace":
            if name in ("default", "kube-system"):
                raise ValidationError(f'forbidden: namespace "{name}" may not be deleted')
            self._mark(obj)  # the namespace controller empties it, then removes it
        else:
            self.store.delete(info.key, name, ns)
            for alloc in self.allocators:
                if info.kind in getattr(alloc, "KINDS", ()):
                    alloc.release(self.store, obj)
        return f'{info.kind.lower()}/{name} deleted'

    def delete_source(self, source) -> list[str]:
        docs = api.load_documents(source)
        objs = api.normalize_all(docs, now=self.clock())
        out = []
        for obj in reversed(objs):
            ns = obj["metadata"].get("namespace", "")
            key = f"{ns}/{obj['metadata']['name']}" if ns else obj["metadata"]["name"]
            try:
                out.append(self.delete(api.kind_key(obj), key))
            except NotFound as exc:
                out.append(str(exc))
        return out

    def _mark(self, obj: dict) -> None:
        stamp = self.clock()
        self.store.patch(api.kind_key(obj), obj["metadata"]["name"],
                         obj["metadata"].get("namespace", ""),
                         lambda o: o["metadata"].setdefault("deletionTimestamp", stamp))

    def label(self, kind: str, key: str, labels: dict) -> str:
        """Set labels (a value of None removes the key); validated like an apply."""
        info = api.resolve_kind(kind)
        ns, name = split_key(key) if info.namespaced else ("", key)
        with self.store.transaction():
            obj = self.store.get(info.key, name, ns)
            if obj is None:
                raise NotFound(f'{info.kind} "{key}" not found')
            new = copy.deepcopy(obj)
            cur = new["metadata"].setdefault("labels", {})
            for k, v in labels.items():
                if v is None:
                    cur.pop(k, None)
                else:
                    cur[k] = str(v)
            api.normalize(new, keep_status=True, now=self.clock())  # validates the labels
            new["metadata"].pop("resourceVersion", None)
            self.store.update(new)
        return f"{info.kind.lower()}/{name} labeled"

    # -- reads ---------------------------------------------------------------------------

    def get(self, kind: str, key: str) -> dict:
        info = api.resolve_kind(kind)
        ns, name = split_key(key) if info.namespaced else ("", key)
        return self.store.must_get(info.key, name, ns)

    def list(self, kind: str, namespace: str | None = None) -> list[dict]:
        info = api.resolve_kind(kind)
        return self.store.list(info.key, namespace if info.namespaced else None)
