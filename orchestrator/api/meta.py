"""ObjectMeta validation and defaulting (name, namespace, labels, owners, timestamps).

Pure. Server-assigned fields (uid, resourceVersion, generation) are kept when present and
never invented here: the store assigns them. A ``generateName`` without a name leaves the
name empty; the caller picks the suffix (see ``generate_name``).
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any, Callable

from orchestrator.api.fields import (
    as_bool,
    as_int,
    as_list,
    as_map,
    as_str,
    check_annotations,
    check_dns1123_label,
    check_known,
    check_labels,
    check_qualified_name,
    child,
    each,
    fail,
    guard,
    item,
    put,
)
from orchestrator.api.kinds import KindInfo

DEFAULT_NAMESPACE = "default"
# k8s' SimpleNameGenerator: 5 random chars appended to a base cut to 58 characters.
GENERATED_SUFFIX_LEN = 5
GENERATED_BASE_MAX = 63 - GENERATED_SUFFIX_LEN

META_FIELDS = frozenset({
    "name", "generateName", "namespace", "labels", "annotations", "uid", "resourceVersion",
    "generation", "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds",
    "ownerReferences", "finalizers", "managedFields", "selfLink",
})
_OWNER_FIELDS = frozenset({"apiVersion", "kind", "name", "uid", "controller",
                           "blockOwnerDeletion"})
_RFC3339_RE = re.compile(
    r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$")

NameCheck = Callable[[str, str], None]


def check_timestamp(value: Any, path: str) -> str:
    text = as_str(value, path, required=True)
    ok = bool(_RFC3339_RE.match(text))
    if ok:
        try:
            datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            ok = False
    if not ok:
        fail(path, f"Invalid value: {text!r}: must be an RFC3339 timestamp "
                   "(e.g. '2024-01-02T03:04:05Z')")
    return text


def generate_name(base: str, suffix: str) -> str:
    """Name for an object that only has ``generateName``: base (cut like k8s) + suffix."""
    return base[:GENERATED_BASE_MAX] + suffix


def normalize_metadata(meta: Any, info: KindInfo, name_check: NameCheck, *, now: str,
                       path: str = "metadata", require_name: bool = True) -> dict:
    """Validated copy of ``meta`` for an object of kind ``info``.

    ``require_name=False`` is for pod templates, whose metadata carries labels only.
    """
    meta = as_map(meta, path, required=require_name)
    check_known(meta, META_FIELDS, path)
    out = dict(meta)

    # Each field is checked on its own (guard): all of metadata's errors are reported.
    name = gen = None
    with guard():
        name = as_str(meta.get("name"), child(path, "name"))
    with guard():
        gen = as_str(meta.get("generateName"), child(path, "generateName"))
    if not name and require_name:
        out["name"] = ""
    with guard():
        if name:
            name_check(name, child(path, "name"))
        elif require_name and not gen:
            fail(child(path, "name"), "Required value: name or generateName is required")
    with guard():
        if gen:
            # k8s validates the prefix with a trailing '-' masked, since a suffix will follow.
            masked = gen[:-1] + "a" if gen.endswith("-") else gen
            name_check(masked[:GENERATED_BASE_MAX], child(path, "generateName"))

    if require_name:
        with guard():
            _namespace(meta, out, info, path)

    put(out, meta, "labels", path, check_labels)
    put(out, meta, "annotations", path, check_annotations)
    for key in ("uid", "resourceVersion", "selfLink"):
        with guard():
            as_str(meta.get(key), child(path, key))
    for key in ("generation", "deletionGracePeriodSeconds"):
        with guard():
            as_int(meta.get(key), child(path, key), minimum=0)
    with guard():
        if meta.get("deletionTimestamp") is not None:
            check_timestamp(meta["deletionTimestamp"], child(path, "deletionTimestamp"))
    if require_name:
        with guard():
            if meta.get("creationTimestamp") is not None:
                check_timestamp(meta["creationTimestamp"], child(path, "creationTimestamp"))
            else:
                out["creationTimestamp"] = now
    with guard():
        if "finalizers" in meta:
            fin_path = child(path, "finalizers")
            finalizers = as_list(meta["finalizers"], fin_path)
            each(finalizers, fin_path, _finalizer)
            out["finalizers"] = list(finalizers)
    put(out, meta, "ownerReferences", path, _owner_refs)
    return out


def _namespace(meta: dict, out: dict, info: KindInfo, path: str) -> None:
    ns = as_str(meta.get("namespace"), child(path, "namespace"))
    if info.namespaced:
        ns = ns or DEFAULT_NAMESPACE
        out["namespace"] = ns
        check_dns1123_label(ns, child(path, "namespace"))
    elif ns:
        fail(child(path, "namespace"), f"Forbidden: not allowed on cluster-scoped kind {info.kind}")
    else:
        out.pop("namespace", None)


def _finalizer(value: Any, path: str) -> None:
    check_qualified_name(as_str(value, path, required=True), path)


def _owner_refs(value: Any, path: str) -> list[dict]:
    refs = []
    controllers = 0
    for i, ref in enumerate(as_list(value, path)):
        p = item(path, i)
        with guard():
            ref = as_map(ref, p, required=True)
            check_known(ref, _OWNER_FIELDS, p)
            for key in ("apiVersion", "kind", "name", "uid"):
                with guard():
                    as_str(ref.get(key), child(p, key), required=True)
            for key in ("controller", "blockOwnerDeletion"):
                with guard():
                    as_bool(ref.get(key), child(p, key))
            controllers += bool(ref.get("controller"))
            refs.append(dict(ref))
    if controllers > 1:
        fail(path, "Invalid value: only one reference can have Controller set to true")
    return refs


def object_ref(kind: str, meta: Any, namespaced: bool | None = None) -> str:
    """"Kind ns/name" ("Kind name" when cluster-scoped) for error messages; tolerant of junk."""
    meta = meta if isinstance(meta, dict) else {}
    name = meta.get("name")
    if not (isinstance(name, str) and name):
        gen = meta.get("generateName")
        name = f"{gen}*" if isinstance(gen, str) and gen else "<unnamed>"
    ns = meta.get("namespace")
    if not (isinstance(ns, str) and ns):
        ns = DEFAULT_NAMESPACE if namespaced else None
    return f"{kind} {ns}/{name}" if ns else f"{kind} {name}"
