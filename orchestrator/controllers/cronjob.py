"""CronJob controller: creates a Job for each time the schedule fires, on the testbed clock.

Touches only the store. As Kubernetes' cronjob controller (v2): the clock is the `now`
passed in; only the most recent missed fire time since status.lastScheduleTime (or the
creation time) starts a Job, and not at all when it is later than startingDeadlineSeconds.
concurrencyPolicy Allow runs Jobs side by side, Forbid skips a run while one is active (it is
retried while still within the deadline), Replace deletes the active Jobs first. Jobs are
named `<cronjob>-<scheduled time in minutes since the epoch>` (so a run is created once even
if the status write is lost) and owned by the CronJob; finished Jobs beyond
successfulJobsHistoryLimit / failedJobsHistoryLimit are deleted oldest first (the garbage
collector then removes their pods). The schedule is read in spec.timeZone, else UTC.
"""

from __future__ import annotations

import copy
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

from orchestrator.api import cron
from orchestrator.controllers.common import controller_uid, is_deleting, owner_ref, sync_each
from orchestrator.controllers.job import finished, parse_time

SCHEDULED_ANNOTATION = "batch.kubernetes.io/cronjob-scheduled-timestamp"


def rfc3339(t: datetime) -> str:
    return t.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def job_name(cj: dict, scheduled: datetime) -> str:
    return f"{cj['metadata']['name']}-{int(scheduled.timestamp()) // 60}"


def _job(cj: dict, scheduled: datetime) -> dict:
    tmpl = copy.deepcopy(cj["spec"]["jobTemplate"])
    meta = tmpl.get("metadata") or {}
    meta = {"labels": dict(meta.get("labels") or {}),
            "annotations": dict(meta.get("annotations") or {})}
    meta["annotations"][SCHEDULED_ANNOTATION] = rfc3339(scheduled)
    meta.update({"name": job_name(cj, scheduled), "namespace": cj["metadata"]["namespace"],
                 "ownerReferences": [owner_ref(cj)]})
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": meta, "spec": tmpl["spec"]}


def _ref(job: dict) -> dict:
    return {"apiVersion": "batch/v1", "kind": "Job", "name": job["metadata"]["name"],
            "namespace": job["metadata"]["namespace"], "uid": job["metadata"]["uid"]}


def _scheduled_at(job: dict) -> str:
    meta = job["metadata"]
    return (meta.get("annotations") or {}).get(SCHEDULED_ANNOTATION) or \
        meta.get("creationTimestamp", "")


def reconcile(store, now: str) -> bool:
    return sync_each(store, "CronJob", lambda cj: _sync(store, cj, now))


def _sync(store, cj: dict, now: str) -> bool:
    wrote = False
    ns, name, uid = cj["metadata"]["namespace"], cj["metadata"]["name"], cj["metadata"]["uid"]
    spec = cj["spec"]
    old = cj.get("status") or {}
    status = {k: v for k, v in old.items() if k in ("lastScheduleTime", "lastSuccessfulTime")}
    jobs = [j for j in store.list("Job", ns) if controller_uid(j) == uid]
    wrote |= _clean_history(store, spec, jobs)
    jobs = [j for j in jobs if store.get("Job", j["metadata"]["name"], ns) is not None]
    active = [j for j in jobs if finished(j) is None and not is_deleting(j)]
    done = [j for j in jobs if finished(j) == "Complete"]
    if done:
        last_ok = max(((j.get("status") or {}).get("completionTime") or "") for j in done)
        if last_ok and last_ok > status.get("lastSuccessfulTime", ""):
            status["lastSuccessfulTime"] = last_ok

    if not spec.get("suspend"):
        zone = ZoneInfo(spec["timeZone"]) if spec.get("timeZone") else timezone.utc
        now_t = parse_time(now).astimezone(zone)
        since = parse_time(old.get("lastScheduleTime") or cj["metadata"]["creationTimestamp"])
        deadline = spec.get("startingDeadlineSeconds")
        if deadline is not None:
            # Runs older than the deadline are skipped anyway; do not count them.
            since = max(since, now_t - timedelta(seconds=deadline))
        scheduled, _missed = cron.most_recent(cron.parse(spec["schedule"]),
                                              since.astimezone(zone), now_t)
        too_late = scheduled is not None and deadline is not None and \
            (now_t - scheduled).total_seconds() > deadline
        if scheduled is not None and not too_late:
            policy = spec.get("concurrencyPolicy", "Allow")
            if policy == "Forbid" and active:
                scheduled = None  # skipped; lastScheduleTime stays, so it is tried again
            elif policy == "Replace":
                for j in active:
                    store.delete("Job", j["metadata"]["name"], ns)
                    wrote = True
                active = []
            if scheduled is not None:
                if store.get("Job", job_name(cj, scheduled), ns) is None:
                    active.append(store.create(_job(cj, scheduled)))
                    wrote = True
                status["lastScheduleTime"] = rfc3339(scheduled)
    status["active"] = [_ref(j) for j in sorted(active, key=_scheduled_at)]
    if not status["active"]:
        del status["active"]
    if old != status:
        store.update_status("CronJob", name, ns, status)
        wrote = True
    return wrote


def _clean_history(store, spec: dict, jobs: list[dict]) -> bool:
    wrote = False
    for state, limit in (("Complete", spec.get("successfulJobsHistoryLimit", 3)),
                         ("Failed", spec.get("failedJobsHistoryLimit", 1))):
        ended = sorted((j for j in jobs if finished(j) == state), key=_scheduled_at)
        for j in ended[:max(0, len(ended) - limit)]:
            store.delete("Job", j["metadata"]["name"], j["metadata"]["namespace"])
            wrote = True
    return wrote
