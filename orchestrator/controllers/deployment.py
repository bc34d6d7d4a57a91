"""Deployment controller: one ReplicaSet per pod-template hash, rolled out as Kubernetes does.

Touches only the store. A template change makes a new ReplicaSet (revision = highest + 1;
going back to an earlier template reuses its ReplicaSet and gives it the new revision, as
a rollback does). RollingUpdate paces the change by the ReplicaSets' available (ready) pods:
the new one grows while all ReplicaSets together ask for at most replicas + maxSurge pods,
old ones shrink while at least replicas - maxUnavailable pods stay available (the
deployment controller's NewRSNewReplicas / reconcileOldReplicaSets). Recreate scales the
old ones to zero and waits for their pods to be gone first. The Deployment's
kubernetes.io/change-cause annotation is copied to its newest ReplicaSet, retired
ReplicaSets beyond revisionHistoryLimit are deleted, and a paused Deployment is only scaled.
`rollback` (kubectl rollout undo), `history` and `rollout_status` serve the CLI.
"""

from __future__ import annotations

import copy
import json

from orchestrator.api.workloads import (
    DEFAULT_MAX_SURGE,
    DEFAULT_MAX_UNAVAILABLE,
    resolve_int_or_percent,
)
from orchestrator.controllers.common import (
    controller_uid,
    is_deleting,
    owner_ref,
    safe_encode,
    sync_each,
)
from orchestrator.errors import NotFound, ValidationError

HASH_LABEL = "pod-template-hash"
REVISION = "deployment.kubernetes.io/revision"
REVISION_HISTORY = "deployment.kubernetes.io/revision-history"
CHANGE_CAUSE = "kubernetes.io/change-cause"


def template_hash(template: dict) -> str:
    return safe_encode(json.dumps(template, sort_keys=True).encode(), 10)


def revision_of(rs: dict) -> int:
    try:
        return int((rs["metadata"].get("annotations") or {}).get(REVISION, "0"))
    except ValueError:
        return 0


def _desired_rs(dep: dict, h: str, replicas: int) -> dict:
    tmpl = copy.deepcopy(dep["spec"]["template"])
    tmpl.setdefault("metadata", {}).setdefault("labels", {})[HASH_LABEL] = h
    sel = copy.deepcopy(dep["spec"]["selector"])
    sel.setdefault("matchLabels", {})[HASH_LABEL] = h
    annotations = {REVISION: "1"}
    cause = (dep["metadata"].get("annotations") or {}).get(CHANGE_CAUSE)
    if cause:
        annotations[CHANGE_CAUSE] = cause
    return {
        "apiVersion": "apps/v1", "kind": "ReplicaSet",
        "metadata": {"name": f"{dep['metadata']['name']}-{h}",
                     "namespace": dep["metadata"]["namespace"],
                     "labels": dict(tmpl["metadata"]["labels"]),
                     "annotations": annotations,
                     "ownerReferences": [owner_ref(dep)]},
        "spec": {"replicas": replicas, "selector": sel, "template": tmpl,
                 "minReadySeconds": dep["spec"].get("minReadySeconds", 0)},
    }


def surge_and_unavailable(dep: dict) -> tuple[int, int]:
    """Absolute maxSurge (rounded up) and maxUnavailable (rounded down); never both 0."""
    want = int(dep["spec"].get("replicas", 1))
    rolling = (dep["spec"].get("strategy") or {}).get("rollingUpdate") or {}
    surge = resolve_int_or_percent(rolling.get("maxSurge", DEFAULT_MAX_SURGE), want,
                                   round_up=True)
    unavailable = resolve_int_or_percent(rolling.get("maxUnavailable", DEFAULT_MAX_UNAVAILABLE),
                                         want, round_up=False)
    if surge == 0 and unavailable == 0:
        unavailable = 1  # as ResolveFenceposts: a rollout must be able to make progress
    return surge, unavailable


def _replicas(rs: dict) -> int:
    return int(rs["spec"].get("replicas", 1))


def _available(rs: dict) -> int:
    return int((rs.get("status") or {}).get("availableReplicas", 0))


def _set_replicas(store, rs: dict, n: int) -> bool:
    if _replicas(rs) == n:
        return False
    got = store.patch("ReplicaSet", rs["metadata"]["name"], rs["metadata"]["namespace"],
                      lambda o: o["spec"].__setitem__("replicas", n))
    if got is not None:
        rs["spec"]["replicas"] = n  # the caller's later arithmetic sees the new size
    return True


def reconcile(store, now: str) -> bool:
    return sync_each(store, "Deployment", lambda dep: _sync(store, dep))


def _sync(store, dep: dict) -> bool:
    wrote = False
    ns, uid = dep["metadata"]["namespace"], dep["metadata"]["uid"]
    owned = [rs for rs in store.list("ReplicaSet", ns)
             if controller_uid(rs) == uid and not is_deleting(rs)]
    h = template_hash(dep["spec"]["template"])
    want = int(dep["spec"].get("replicas", 1))
    new = next((rs for rs in owned if rs["metadata"]["name"] == f"{dep['metadata']['name']}-{h}"),
               None)
    old = [rs for rs in owned if rs is not new]
    top = max((revision_of(rs) for rs in owned), default=0)
    paused = bool(dep["spec"].get("paused"))
    recreate = (dep["spec"].get("strategy") or {}).get("type") == "Recreate"
    if new is None and not paused:
        first = 0 if (recreate and any(_replicas(rs) for rs in old)) else \
            _new_rs_replicas(dep, old, None)
        rs = _desired_rs(dep, h, first)
        rs["metadata"]["annotations"][REVISION] = str(top + 1)
        new = store.create(rs)
        wrote = True
    elif new is not None:
        wrote |= _sync_revision(store, dep, new, top)
    if new is None:  # paused before its template's ReplicaSet existed: only scale
        wrote |= _scale_paused(store, old, want)
    elif paused:
        wrote |= _scale_paused(store, [new] + old, want)
    elif recreate:
        for rs in old:
            wrote |= _set_replicas(store, rs, 0)
        if not any((rs.get("status") or {}).get("replicas", 0) for rs in old):
            wrote |= _set_replicas(store, new, want)
    else:
        wrote |= _set_replicas(store, new, _new_rs_replicas(dep, old, new))
        wrote |= _scale_down_old(store, dep, old, new)
    wrote |= _clean_history(store, dep, old)
    if new is not None:
        rev = str(revision_of(store.get("ReplicaSet", new["metadata"]["name"], ns) or new))
        if (dep["metadata"].get("annotations") or {}).get(REVISION) != rev:
            store.patch("Deployment", dep["metadata"]["name"], ns,
                        lambda o: o["metadata"].setdefault("annotations", {})
                        .__setitem__(REVISION, rev))
            wrote = True
    return _write_status(store, dep, new, want) or wrote


def _sync_revision(store, dep: dict, new: dict, top: int) -> bool:
    """A reused ReplicaSet (rollback, or the template changed back) becomes the newest
    revision; the Deployment's change-cause follows its newest ReplicaSet."""
    ann = new["metadata"].get("annotations") or {}
    rev = revision_of(new)
    cause = (dep["metadata"].get("annotations") or {}).get(CHANGE_CAUSE)
    bump = rev < top
    if not bump and (cause is None or ann.get(CHANGE_CAUSE) == cause):
        return False

    def edit(o):
        a = o["metadata"].setdefault("annotations", {})
        if bump:
            history = [x for x in a.get(REVISION_HISTORY, "").split(",") if x] + [str(rev)]
            a[REVISION_HISTORY] = ",".join(history)
            a[REVISION] = str(top + 1)
        if cause is not None:
            a[CHANGE_CAUSE] = cause
    store.patch("ReplicaSet", new["metadata"]["name"], new["metadata"]["namespace"], edit)
    return True


def _new_rs_replicas(dep: dict, old: list[dict], new: dict | None) -> int:
    """NewRSNewReplicas: grow toward replicas while every ReplicaSet together stays within
    replicas + maxSurge."""
    want = int(dep["spec"].get("replicas", 1))
    have = _replicas(new) if new is not None else 0
    if have >= want:
        return want
    surge, _ = surge_and_unavailable(dep)
    total = have + sum(_replicas(rs) for rs in old)
    if total >= want + surge:
        return have
    return have + min(want + surge - total, want - have)


def _scale_down_old(store, dep: dict, old: list[dict], new: dict) -> bool:
    """reconcileOldReplicaSets: shrink old ReplicaSets, never below replicas -
    maxUnavailable available pods. Unavailable old pods go first (they cost nothing)."""
    old = sorted((rs for rs in old if _replicas(rs) > 0),
                 key=lambda rs: (rs["metadata"].get("creationTimestamp", ""), revision_of(rs)))
    if not old:
        return False
    want = int(dep["spec"].get("replicas", 1))
    _, unavailable = surge_and_unavailable(dep)
    min_available = want - unavailable
    everything = old + [new]
    new_unavailable = max(0, _replicas(new) - _available(new))
    budget = sum(_replicas(rs) for rs in everything) - min_available - new_unavailable
    if budget <= 0:
        return False
    wrote = False
    for rs in old:  # cleanupUnhealthyReplicas
        if budget <= 0:
            break
        down = min(budget, max(0, _replicas(rs) - _available(rs)))
        if down:
            wrote |= _set_replicas(store, rs, _replicas(rs) - down)
            budget -= down
    available = sum(min(_available(rs), _replicas(rs)) for rs in old) + _available(new)
    excess = available - min_available
    for rs in old:  # scaleDownOldReplicaSetsForRollingUpdate
        if excess <= 0:
            break
        down = min(_replicas(rs), excess)
        if down:
            wrote |= _set_replicas(store, rs, _replicas(rs) - down)
            excess -= down
    return wrote


def _scale_paused(store, rss: list[dict], want: int) -> bool:
    """Paused: no rollout; the newest ReplicaSet with pods absorbs a scale change."""
    live = sorted((rs for rs in rss if _replicas(rs) > 0), key=revision_of, reverse=True)
    if not live:
        return False
    extra = want - sum(_replicas(rs) for rs in live)
    return _set_replicas(store, live[0], max(0, _replicas(live[0]) + extra)) if extra else False


def _clean_history(store, dep: dict, old: list[dict]) -> bool:
    limit = int(dep["spec"].get("revisionHistoryLimit", 10))
    idle = sorted((rs for rs in old if _replicas(rs) == 0
                   and not (rs.get("status") or {}).get("replicas")), key=revision_of)
    for rs in idle[:max(0, len(idle) - limit)]:
        store.delete("ReplicaSet", rs["metadata"]["name"], rs["metadata"]["namespace"])
    return len(idle) > limit


def _write_status(store, dep: dict, new: dict | None, want: int) -> bool:
    ns, uid = dep["metadata"]["namespace"], dep["metadata"]["uid"]
    owned = [rs for rs in store.list("ReplicaSet", ns) if controller_uid(rs) == uid]
    new = next((rs for rs in owned if new and rs["metadata"]["name"] == new["metadata"]["name"]),
               None)

    def count(field, rss=owned):
        return sum((rs.get("status") or {}).get(field, 0) for rs in rss)
    total, available = count("replicas"), count("availableReplicas")
    updated = count("replicas", [new] if new else [])
    complete = updated == want and total == want and available >= want
    status = {
        "observedGeneration": dep["metadata"].get("generation", 1),
        "replicas": total, "updatedReplicas": updated, "readyReplicas": count("readyReplicas"),
        "availableReplicas": available, "unavailableReplicas": max(0, want - available),
        "conditions": [
            {"type": "Available", "status": "True" if available >= want - _max_unavailable(dep)
             else "False", "reason": "MinimumReplicasAvailable"
             if available >= want - _max_unavailable(dep) else "MinimumReplicasUnavailable"},
            {"type": "Progressing", "status": "True",
             "reason": "NewReplicaSetAvailable" if complete else "ReplicaSetUpdated",
             "message": f'ReplicaSet "{new["metadata"]["name"]}" '
                        + ("has successfully progressed." if complete else "is progressing.")
             if new else "no ReplicaSet for the current template (paused)"},
        ],
    }
    if dep.get("status") == status:
        return False
    store.update_status("Deployment", dep["metadata"]["name"], ns, status)
    return True


def _max_unavailable(dep: dict) -> int:
    if (dep["spec"].get("strategy") or {}).get("type") == "Recreate":
        return 0
    return surge_and_unavailable(dep)[1]


# -- rollout helpers (kubectl rollout status / history / undo) ----------------------------

def _split_key(key: str) -> tuple[str, str]:
    ns, _, name = key.rpartition("/")
    return ns or "default", name


def _get(store, key: str) -> dict:
    ns, name = _split_key(key)
    dep = store.get("Deployment", name, ns)
    if dep is None:
        raise NotFound(f'deployments.apps "{name}" not found in namespace "{ns}"')
    return dep


def _owned(store, dep: dict) -> list[dict]:
    uid = dep["metadata"]["uid"]
    return sorted((rs for rs in store.list("ReplicaSet", dep["metadata"]["namespace"])
                   if controller_uid(rs) == uid), key=revision_of)


def history(store, key: str) -> list[tuple[int, str | None]]:
    """(revision, change-cause) of each ReplicaSet the Deployment kept, oldest first."""
    return [(revision_of(rs), (rs["metadata"].get("annotations") or {}).get(CHANGE_CAUSE))
            for rs in _owned(store, _get(store, key))]


def _pod_template(rs: dict) -> dict:
    tmpl = copy.deepcopy(rs["spec"]["template"])
    labels = tmpl.get("metadata", {}).get("labels") or {}
    labels.pop(HASH_LABEL, None)
    return tmpl


def rollback(store, key: str, now: str, to_revision: int | None = None) -> dict:
    """kubectl rollout undo: put the template of revision `to_revision` (default: the one
    before the current) back into the Deployment; the controller then rolls it out,
    reusing that ReplicaSet. Returns the Deployment. `now` is the caller's clock (kept for
    the controllers' common signature; nothing here is time-stamped)."""
    dep = _get(store, key)
    owned = _owned(store, dep)
    if to_revision:
        target = next((rs for rs in owned if revision_of(rs) == to_revision), None)
        if target is None:
            raise ValidationError(f"unable to find specified revision {to_revision} in history",
                                  obj=f"deployment.apps/{dep['metadata']['name']}")
    else:
        if len(owned) < 2:
            raise ValidationError(
                f"no rollout history found for deployment \"{dep['metadata']['name']}\"",
                obj=f"deployment.apps/{dep['metadata']['name']}")
        target = owned[-2]
    tmpl = _pod_template(target)
    if tmpl == dep["spec"]["template"]:
        return dep  # kubectl: "skipped rollback (current template already matches revision)"
    cause = (target["metadata"].get("annotations") or {}).get(CHANGE_CAUSE)

    def edit(o):
        o["spec"]["template"] = tmpl
        annotations = o["metadata"].setdefault("annotations", {})
        if cause is None:
            annotations.pop(CHANGE_CAUSE, None)
        else:
            annotations[CHANGE_CAUSE] = cause
    return store.patch("Deployment", dep["metadata"]["name"], dep["metadata"]["namespace"],
                       edit)


def rollout_status(dep: dict) -> tuple[bool, str]:
    """(done, message) worded as kubectl rollout status prints them."""
    name = dep["metadata"]["name"]
    st = dep.get("status") or {}
    want = int(dep["spec"].get("replicas", 1))
    if dep["metadata"].get("generation", 1) > st.get("observedGeneration", 0):
        return False, "Waiting for deployment spec update to be observed..."
    updated, total = st.get("updatedReplicas", 0), st.get("replicas", 0)
    available = st.get("availableReplicas", 0)
    if updated < want:
        return False, (f'Waiting for deployment "{name}" rollout to finish: {updated} out of '
                       f"{want} new replicas have been updated...")
    if total > updated:
        return False, (f'Waiting for deployment "{name}" rollout to finish: {total - updated} '
                       "old replicas are pending termination...")
    if available < updated:
        return False, (f'Waiting for deployment "{name}" rollout to finish: {available} of '
                       f"{updated} updated replicas are available...")
    return True, f'deployment "{name}" successfully rolled out'
