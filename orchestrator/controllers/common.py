"""Helpers shared by controllers: owner references, name suffixes, pod readiness. Pure."""

from __future__ import annotations

import hashlib
import secrets

# Kubernetes' rand.SafeEncodeString alphabet: no vowels (no words), no look-alikes.
SAFE_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"


def safe_encode(data: bytes, length: int) -> str:
    n = int.from_bytes(hashlib.sha256(data).digest(), "big")
    out = []
    for _ in range(length):
        n, r = divmod(n, len(SAFE_ALPHABET))
        out.append(SAFE_ALPHABET[r])
    return "".join(out)


def random_suffix(length: int) -> str:
    """Suffix for generated names (Kubernetes: 5 chars for pods, 10 for template hashes)."""
    return "".join(secrets.choice(SAFE_ALPHABET) for _ in range(length))


def owner_ref(owner: dict) -> dict:
    return {"apiVersion": owner["apiVersion"], "kind": owner["kind"],
            "name": owner["metadata"]["name"], "uid": owner["metadata"]["uid"],
            "controller": True, "blockOwnerDeletion": True}


def controller_uid(obj: dict) -> str | None:
    for ref in (obj.get("metadata") or {}).get("ownerReferences") or []:
        if ref.get("controller"):
            return ref.get("uid")
    return None


def is_deleting(obj: dict) -> bool:
    return bool((obj.get("metadata") or {}).get("deletionTimestamp"))


def pod_ready(pod: dict) -> bool:
    for c in (pod.get("status") or {}).get("conditions") or []:
        if c.get("type") == "Ready":
            return c.get("status") == "True"
    return False


def pod_active(pod: dict) -> bool:
    """Counts toward a ReplicaSet's replicas: not terminating, not finished."""
    phase = (pod.get("status") or {}).get("phase")
    return not is_deleting(pod) and phase not in ("Succeeded", "Failed")


def key(obj: dict) -> str:
    meta = obj["metadata"]
    ns = meta.get("namespace")
    return f"{ns}/{meta['name']}" if ns else meta["name"]


def sync_each(store, kind: str, sync) -> bool:
    """``sync(obj) -> wrote`` for every object of ``kind`` not being deleted. One object's
    failure never blocks the others: the first is re-raised after all were tried (the
    manager logs it)."""
    wrote, failures = False, []
    for obj in store.list(kind):
        if is_deleting(obj):
            continue
        try:
            wrote |= bool(sync(obj))
        except Exception as exc:  # noqa: BLE001 - one bad object must not block the others
            failures.append(exc)
    if failures:
        raise failures[0]
    return wrote


def pod_from_template(owner: dict, existing: set[str], labels: dict | None = None) -> dict:
    """A new Pod from ``owner``'s pod template: named `<owner>-<5 safe chars>` (not in
    ``existing``), in the owner's namespace, controlled by it, with ``labels`` added."""
    import copy
    tmpl = copy.deepcopy(owner["spec"]["template"])
    meta = tmpl.setdefault("metadata", {})
    base = owner["metadata"]["name"]
    while True:
        name = f"{base}-{random_suffix(5)}"
        if name not in existing:
            break
    meta.setdefault("labels", {}).update(labels or {})
    meta.update({"name": name, "namespace": owner["metadata"]["namespace"],
                 "generateName": f"{base}-", "ownerReferences": [owner_ref(owner)]})
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": tmpl["spec"]}
