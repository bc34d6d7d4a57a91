"""Job controller: runs pods until `completions` succeed, or fails after `backoffLimit`.

Touches only the store. As Kubernetes' job controller: at most `parallelism` pods active
(and no more than the completions still missing), pods named `<job>-<5 chars>` with the
job-name / controller-uid labels and an owner reference; a pod's phase (from its containers'
exit codes, set by the kubelet) counts it as succeeded or failed; container restarts of an
OnFailure pod count as failures too. Finished pods are kept (for their logs and status), as
in Kubernetes. Failures past backoffLimit, or activeDeadlineSeconds passing, end the Job
with a Failed condition and delete its active pods; enough successes end it Complete.
Not modelled: the exponential back-off delay between retries (retries start at once, which
only makes tests faster) and Indexed completion mode.
"""

from __future__ import annotations

from datetime import datetime

from orchestrator.controllers.common import (
    controller_uid,
    is_deleting,
    pod_active,
    pod_from_template,
    pod_ready,
    sync_each,
)

JOB_NAME_LABEL = "batch.kubernetes.io/job-name"
UID_LABEL = "batch.kubernetes.io/controller-uid"


def parse_time(stamp: str) -> datetime:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00"))


def condition(job: dict, ctype: str) -> dict | None:
    for c in (job.get("status") or {}).get("conditions") or []:
        if c.get("type") == ctype and c.get("status") == "True":
            return c
    return None


def finished(job: dict) -> str | None:
    """"Complete" or "Failed" once the Job has ended, else None."""
    for ctype in ("Complete", "Failed"):
        if condition(job, ctype):
            return ctype
    return None


def _new_pod(job: dict, existing: set[str]) -> dict:
    base, uid = job["metadata"]["name"], job["metadata"]["uid"]
    # Both the legacy and the batch.kubernetes.io labels, as Kubernetes 1.27+ sets them.
    return pod_from_template(job, existing, {JOB_NAME_LABEL: base, "job-name": base,
                                             UID_LABEL: uid, "controller-uid": uid})


def _phase(pod: dict) -> str | None:
    return (pod.get("status") or {}).get("phase")


def _restarts(pod: dict) -> int:
    return sum(int(s.get("restartCount", 0))
               for s in (pod.get("status") or {}).get("containerStatuses") or [])


def _cond(ctype: str, reason: str, message: str, now: str) -> dict:
    return {"type": ctype, "status": "True", "reason": reason, "message": message,
            "lastProbeTime": now, "lastTransitionTime": now}


def reconcile(store, now: str, *, mark_deleted) -> bool:
    """One pass over every Job. `mark_deleted(pod)` starts a graceful pod deletion."""
    if not store.has("Job"):
        return False     # no pods to list (decoding hundreds of them costs ms every pass)
    all_pods = store.list("Pod")
    return sync_each(store, "Job", lambda job: _sync(store, job, all_pods, now, mark_deleted))


def _sync(store, job: dict, all_pods: list[dict], now: str, mark_deleted) -> bool:
    wrote = False
    ns, name, uid = job["metadata"]["namespace"], job["metadata"]["name"], job["metadata"]["uid"]
    spec = job["spec"]
    old = job.get("status") or {}
    pods = [p for p in all_pods if controller_uid(p) == uid]
    active = [p for p in pods if pod_active(p)]
    succeeded = sum(1 for p in pods if _phase(p) == "Succeeded")
    failed = sum(1 for p in pods if _phase(p) == "Failed")
    # An OnFailure pod restarts in place: each restart is a failed attempt (Kubernetes
    # counts them toward backoffLimit too).
    if spec["template"]["spec"].get("restartPolicy") == "OnFailure":
        failed += sum(_restarts(p) for p in active)
    # Counts never go back: restarts of a pod deleted since were still failures.
    failed = max(failed, int(old.get("failed", 0)))
    succeeded = max(succeeded, int(old.get("succeeded", 0)))
    status = {k: v for k, v in old.items() if k in ("startTime", "completionTime",
                                                  "conditions")}
    done = finished(job)
    completions = spec.get("completions")
    if done is None:
        start = status.get("startTime")
        if not spec.get("suspend") and start is None:
            status["startTime"] = start = now
        deadline = spec.get("activeDeadlineSeconds")
        if failed > spec.get("backoffLimit", 6):
            done = "Failed"
            status["conditions"] = [_cond("Failed", "BackoffLimitExceeded",
                                          "Job has reached the specified backoff limit", now)]
        elif deadline and start and \
                (parse_time(now) - parse_time(start)).total_seconds() >= deadline:
            done = "Failed"
            status["conditions"] = [_cond("Failed", "DeadlineExceeded",
                                          "Job was active longer than specified deadline", now)]
        elif (completions is not None and succeeded >= completions) or \
                (completions is None and succeeded > 0 and not active):
            done = "Complete"
            status["conditions"] = [_cond("Complete", "", "", now)]
            status["completionTime"] = now
    if done is not None or spec.get("suspend"):
        # Ended (a Complete job's surplus parallel pods too) or suspended: nothing runs.
        for pod in active:
            if not is_deleting(pod):
                mark_deleted(pod)
                wrote = True
        active = []
    elif done is None:
        parallelism = spec.get("parallelism", 1)
        if completions is None:
            # Work queue: once one pod succeeded no new ones start.
            want = 0 if succeeded else parallelism
        else:
            want = min(parallelism, completions - succeeded)
        if len(active) < want:
            names = {p["metadata"]["name"] for p in all_pods
                     if p["metadata"]["namespace"] == ns}
            for _ in range(want - len(active)):
                pod = _new_pod(job, names)
                names.add(pod["metadata"]["name"])
                store.create(pod)
                wrote = True
            active = [p for p in store.list("Pod", ns)
                      if controller_uid(p) == uid and pod_active(p)]
        elif len(active) > want:
            # parallelism lowered: the newest pods go first.
            for pod in sorted(active, key=lambda p: p["metadata"].get("creationTimestamp", ""),
                              reverse=True)[:len(active) - want]:
                mark_deleted(pod)
                wrote = True
    status.update({"active": len(active), "succeeded": succeeded, "failed": failed,
                   "ready": sum(1 for p in active if pod_ready(p))})
    if not status["active"]:
        del status["active"]  # as the API server omits zero counts
    if old != status:
        store.update_status("Job", name, ns, status)
        wrote = True
    return wrote
