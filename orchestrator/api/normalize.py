"""normalize(): one API object in, a new defaulted and validated object out.

Pure (``now`` is passed in). Dispatches on kind to the per-kind modules and does what the
API server does on create: strict field check, metadata defaulting, server-owned status
(dropped from input unless ``keep_status``), generation for workloads. normalize_all()
validates a whole apply before anything is applied and rejects duplicates in it. Every field
error of an object is reported at once (fields.collecting / guard), in one ValidationError.
"""

from __future__ import annotations

import copy
from typing import Any, Iterable

from orchestrator.api.batch import normalize_cronjob_spec, normalize_job_spec
from orchestrator.api.bgp import normalize_bgpconfiguration_spec, normalize_bgppeer_spec
from orchestrator.api.calico_policy import (
    check_policy_name,
    normalize_calico_networkpolicy_spec,
    normalize_globalnetworkpolicy_spec,
)
from orchestrator.api.cluster import (
    namespace_labels,
    normalize_namespace_spec,
    normalize_node_spec,
)
from orchestrator.api.fields import (
    as_map,
    check_dns1123_label,
    check_dns1123_subdomain,
    check_known,
    collecting,
    fail,
    failed,
    guard,
    type_name,
)
from orchestrator.api.ippool import check_pool_overlap, normalize_ippool_spec
from orchestrator.api.kinds import KINDS, KindInfo, kind_key
from orchestrator.api.loader import INPUT_SOURCE, Document
from orchestrator.api.meta import check_timestamp, normalize_metadata, object_ref
from orchestrator.api.netpol import normalize_networkpolicy_spec
from orchestrator.api.pod import normalize_pod_spec, qos_class
from orchestrator.api.service import (
    ENDPOINTS_FIELDS,
    ENDPOINTSLICE_FIELDS,
    normalize_endpoints,
    normalize_endpointslice,
    normalize_service_spec,
)
from orchestrator.api.workloads import (
    normalize_daemonset_spec,
    normalize_deployment_spec,
    normalize_replicaset_spec,
    normalize_statefulset_spec,
)
from orchestrator.errors import ValidationError

TOP_FIELDS = frozenset({"apiVersion", "kind", "metadata", "spec", "status"})
# Kinds whose data sits at the top level instead of in a spec.
_BODY_FIELDS = {"Endpoints": ENDPOINTS_FIELDS, "EndpointSlice": ENDPOINTSLICE_FIELDS}
# Node status is written by the node itself (kubelet; here the testbed), not dropped.
_STATUS_FROM_WRITER = frozenset({"Node"})


def normalize(obj: Any, *, source: str | None = None, index: int | None = None, now: str,
              keep_status: bool = False) -> dict:
    """A NEW dict: ``obj`` defaulted and validated, or ValidationError naming where.

    ``now`` (RFC3339) becomes metadata.creationTimestamp when absent. An object with only
    ``metadata.generateName`` comes back with ``name: ""``; the caller generates the name
    (meta.generate_name) before storing it.
    """
    check_timestamp(now, "now")
    ref = None
    try:
        if not isinstance(obj, dict):
            fail(None, f"an API object must be a mapping, got {type_name(obj)}")
        ref = _ref_of(obj)
        with collecting() as errs:
            try:
                out = _normalize(_drop_nulls(copy.deepcopy(obj)), now=now,
                                 keep_status=keep_status)
            except ValidationError as exc:  # one no guard took: nothing more to check
                errs.add(exc)
            except _KNOCK_ON:
                # Going on past a recorded error can trip over the very value it reported
                # (a string where a list belongs); that error is the answer, not this one.
                if not errs:
                    raise
            errs.raise_if_any()
        return out
    except ValidationError as exc:
        raise exc.located(source=source, index=index, obj=ref) from None


_KNOCK_ON = (AttributeError, IndexError, KeyError, TypeError, ValueError)


def _drop_nulls(value: Any) -> Any:
    """`field: null` means "not set" to the API server's JSON decoding; so it does here."""
    if isinstance(value, dict):
        return {k: _drop_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_drop_nulls(v) for v in value]
    return value


def _ref_of(obj: dict) -> str:
    kind = obj.get("kind")
    kind = kind if isinstance(kind, str) and kind else "<no kind>"
    info = KINDS.get(kind_key({"kind": kind, "apiVersion": obj.get("apiVersion")}))
    return object_ref(kind, obj.get("metadata"), info.namespaced if info else None)


def kind_info_of(obj: dict) -> KindInfo:
    """KindInfo for an object's kind/apiVersion; ValidationError when unknown or mismatched."""
    kind, api_version = obj.get("kind"), obj.get("apiVersion")
    if not kind:
        fail("kind", "Required value: kind must be set")
    if not api_version:
        fail("apiVersion", "Required value: apiVersion must be set")
    if not isinstance(kind, str) or not isinstance(api_version, str):
        fail("kind", f"kind and apiVersion must be strings, got {kind!r} / {api_version!r}")
    info = KINDS.get(kind_key(obj))
    if info is None:
        known = ", ".join(f"{i.kind} ({i.api_version})" for _, i in sorted(KINDS.items()))
        fail("kind", f"unknown kind {kind!r} (apiVersion {api_version}); known kinds: {known}")
    if api_version not in info.api_versions:
        # Every group serving this kind name (NetworkPolicy: networking.k8s.io and Calico).
        served = [v for i in KINDS.values() if i.kind == kind for v in i.api_versions]
        fail("apiVersion", f"no kind {kind!r} is registered for apiVersion {api_version!r}: "
                           f"{kind} is served as {' / '.join(served)}")
    return info


_CALICO_POLICY_KEYS = frozenset({"NetworkPolicy.projectcalico.org", "GlobalNetworkPolicy"})


def _name_check(info: KindInfo):
    if info.key in _CALICO_POLICY_KEYS:
        return check_policy_name
    return check_dns1123_label if info.kind == "Namespace" else check_dns1123_subdomain


def _normalize(obj: dict, *, now: str, keep_status: bool) -> dict:
    info = kind_info_of(obj)  # without a kind there is nothing else to check
    check_known(obj, TOP_FIELDS | _BODY_FIELDS.get(info.kind, frozenset()), "")
    # metadata and spec are independent: a bad name does not hide a bad port.
    meta: dict = {"name": ""}
    with guard():
        meta = normalize_metadata(obj.get("metadata"), info, _name_check(info), now=now)
    spec: Any = None
    with guard():
        spec = _normalize_spec(obj, info, meta, now=now)
    kind = info.kind
    if kind == "Namespace" and meta["name"] and not failed():  # labels known to be a map
        meta["labels"] = namespace_labels(meta)
    if kind in ("Deployment", "ReplicaSet", "StatefulSet", "DaemonSet", "Job", "CronJob"):
        meta.setdefault("generation", 1)

    out = {"apiVersion": obj["apiVersion"], "kind": kind, "metadata": meta, "spec": spec}
    if kind in _BODY_FIELDS:
        del out["spec"]
        with guard():
            out.update(normalize_endpoints(obj) if kind == "Endpoints"
                       else normalize_endpointslice(obj))
    status = obj.get("status")
    if status is not None and (keep_status or kind in _STATUS_FROM_WRITER):
        out["status"] = as_map(status, "status")
    elif kind == "Pod" and not failed():
        out["status"] = {"phase": "Pending", "qosClass": qos_class(spec)}
    elif kind == "Namespace":
        out["status"] = {"phase": "Active"}
    return out


def _normalize_spec(obj: dict, info: KindInfo, meta: dict, *, now: str) -> Any:
    kind = info.kind
    # Dispatch on the key: two kinds are named NetworkPolicy.
    if info.key == "NetworkPolicy.projectcalico.org":
        spec = normalize_calico_networkpolicy_spec(obj.get("spec"))
    elif kind == "GlobalNetworkPolicy":
        spec = normalize_globalnetworkpolicy_spec(obj.get("spec"))
    elif kind == "NetworkPolicy":
        spec = normalize_networkpolicy_spec(obj.get("spec"))
    elif kind == "Pod":
        spec = normalize_pod_spec(obj.get("spec"), "spec")
    elif kind == "Deployment":
        spec = normalize_deployment_spec(obj.get("spec"), now=now)
    elif kind == "ReplicaSet":
        spec = normalize_replicaset_spec(obj.get("spec"), now=now)
    elif kind == "StatefulSet":
        spec = normalize_statefulset_spec(obj.get("spec"), now=now)
    elif kind == "DaemonSet":
        spec = normalize_daemonset_spec(obj.get("spec"), now=now)
    elif kind == "Job":
        spec = normalize_job_spec(obj.get("spec"), now=now)
    elif kind == "CronJob":
        spec = normalize_cronjob_spec(obj.get("spec"), now=now)
    elif kind == "Namespace":
        spec = normalize_namespace_spec(obj.get("spec"))
    elif kind == "Node":
        spec = normalize_node_spec(obj.get("spec"))
    elif kind == "IPPool":
        spec = normalize_ippool_spec(obj.get("spec"))
    elif kind == "BGPConfiguration":
        spec = normalize_bgpconfiguration_spec(obj.get("spec"), meta["name"])
    elif kind == "Service":
        spec = normalize_service_spec(obj.get("spec"))
    elif kind in _BODY_FIELDS:
        spec = None
    elif kind == "BGPPeer":
        spec = normalize_bgppeer_spec(obj.get("spec"), meta["name"])
    else:  # a KINDS entry without a normalizer is a programming error, not bad input
        raise AssertionError(f"no normalizer for kind {kind}")
    return spec


def _located(doc: Document, exc: ValidationError, ref: str | None) -> ValidationError:
    prefix = f"items[{doc.item}]" if doc.item is not None else None
    return exc.located(source=exc.source or doc.source, index=doc.index, obj=ref,
                       prefix=prefix)


def normalize_all(documents: Iterable[Document | dict], *, now: str,
                  keep_status: bool = False) -> list[dict]:
    """Normalize every document, or raise the first invalid object's error (with all of
    that object's field errors), so the caller applies nothing.

    Also rejects the same kind/namespace/name twice (kind by api.kind_key, so the two
    NetworkPolicy kinds may share a name), and IPPools whose CIDRs overlap each other,
    within this one apply.
    """
    docs = [d if isinstance(d, Document) else Document(d, INPUT_SOURCE, i)
            for i, d in enumerate(documents)]
    out: list[dict] = []
    seen: dict[tuple[str, str, str], Document] = {}
    pools: list[dict] = []
    for doc in docs:
        try:
            obj = normalize(doc.obj, now=now, keep_status=keep_status)
        except ValidationError as exc:
            ref = _ref_of(doc.obj) if isinstance(doc.obj, dict) else None
            raise _located(doc, exc, ref) from None
        ref = _ref_of(obj)
        meta = obj["metadata"]
        if meta["name"]:
            key = (kind_key(obj), meta.get("namespace", ""), meta["name"])
            if key in seen:
                first = seen[key]
                where = f"{first.source} document {first.index}"
                raise _located(doc, ValidationError(
                    f"duplicate object: {ref} is already defined in this apply ({where})",
                    field="metadata.name"), ref)
            seen[key] = doc
        if obj["kind"] == "IPPool":
            try:
                check_pool_overlap(obj, pools)
            except ValidationError as exc:
                raise _located(doc, exc, ref) from None
            pools.append(obj)
        out.append(obj)
    return out
