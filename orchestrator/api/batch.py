"""batch/v1 Job and CronJob specs: defaulting and validation.

Pure. Follows batch/v1 SetDefaults_Job (parallelism 1, completions 1 when neither is set,
backoffLimit 6, completionMode NonIndexed) and SetDefaults_CronJob (concurrencyPolicy Allow,
successfulJobsHistoryLimit 3, failedJobsHistoryLimit 1, suspend false), and ValidateJob /
ValidateCronJob: a pod template whose restartPolicy is OnFailure or Never, a valid cron
schedule, a known timeZone.
"""

from __future__ import annotations

from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from orchestrator.api import cron
from orchestrator.api.fields import (
    as_bool,
    as_int,
    as_map,
    as_str,
    check_known,
    child,
    fail,
    guard,
    one_of,
)
from orchestrator.api.kinds import KINDS
from orchestrator.api.labels import label_selector_matches, validate_label_selector
from orchestrator.api.meta import normalize_metadata
from orchestrator.api.pod import normalize_pod_spec
from orchestrator.errors import ValidationError

JOB_SPEC_FIELDS = frozenset({"activeDeadlineSeconds", "backoffLimit", "completionMode",
                             "completions", "manualSelector", "parallelism", "selector",
                             "suspend", "template", "ttlSecondsAfterFinished"})
CRONJOB_SPEC_FIELDS = frozenset({"concurrencyPolicy", "failedJobsHistoryLimit", "jobTemplate",
                                 "schedule", "startingDeadlineSeconds",
                                 "successfulJobsHistoryLimit", "suspend", "timeZone"})
_TEMPLATE_FIELDS = frozenset({"metadata", "spec"})


def normalize_job_spec(spec: Any, *, now: str, path: str = "spec") -> dict:
    spec = as_map(spec, path, required=True)
    check_known(spec, JOB_SPEC_FIELDS, path)
    out = dict(spec)
    parallelism = spec.get("parallelism")
    completions = spec.get("completions")
    if completions is None and parallelism is None:
        completions = 1  # neither set: one pod, run once
    with guard():
        out["parallelism"] = as_int(1 if parallelism is None else parallelism,
                                    child(path, "parallelism"), minimum=0)
    with guard():
        if completions is not None:  # unset with parallelism set: a work queue
            out["completions"] = as_int(completions, child(path, "completions"), minimum=0)
    with guard():
        out["backoffLimit"] = as_int(spec.get("backoffLimit", 6), child(path, "backoffLimit"),
                                     minimum=0)
    with guard():
        out["completionMode"] = one_of(spec.get("completionMode", "NonIndexed"),
                                       child(path, "completionMode"), ("NonIndexed",))
    with guard():
        out["suspend"] = bool(as_bool(spec.get("suspend", False), child(path, "suspend")))
    for field in ("activeDeadlineSeconds", "ttlSecondsAfterFinished"):
        with guard():
            if field in spec:
                out[field] = as_int(spec[field], child(path, field),
                                    minimum=1 if field == "activeDeadlineSeconds" else 0)
    with guard():
        if spec.get("manualSelector"):
            fail(child(path, "manualSelector"),
                 "Unsupported: calinet Jobs always select their pods by owner")
    with guard():
        out["template"] = _job_template(spec, path, out, now=now)
    return out


def _job_template(spec: dict, path: str, out: dict, *, now: str) -> dict:
    template = as_map(spec.get("template"), child(path, "template"), required=True)
    tpath = child(path, "template")
    check_known(template, _TEMPLATE_FIELDS, tpath)
    tmeta: dict = {}
    with guard():
        tmeta = normalize_metadata(template.get("metadata") or {}, KINDS["Pod"],
                                   _no_name_check, now=now, path=child(tpath, "metadata"),
                                   require_name=False)
        if spec.get("selector") is not None:
            sel = validate_label_selector(spec["selector"], child(path, "selector"))
            if not label_selector_matches(sel, tmeta.get("labels") or {}):
                fail(child(tpath, "metadata.labels"),
                     "Invalid value: selector does not match template labels")
            out["selector"] = sel
    tspec: dict = {}
    with guard():
        tspec = normalize_pod_spec(template.get("spec"), child(tpath, "spec"))
        if tspec["restartPolicy"] not in ("OnFailure", "Never"):
            fail(child(tpath, "spec.restartPolicy"),
                 f"Unsupported value: {tspec['restartPolicy']!r}: supported values: "
                 "\"OnFailure\", \"Never\"")
    return {"metadata": tmeta, "spec": tspec}


def normalize_cronjob_spec(spec: Any, *, now: str) -> dict:
    spec = as_map(spec, "spec", required=True)
    check_known(spec, CRONJOB_SPEC_FIELDS, "spec")
    out = dict(spec)
    with guard():
        if spec.get("schedule") is None:
            fail("spec.schedule", "Required value")
        out["schedule"] = as_str(spec["schedule"], "spec.schedule", required=True)
        cron.parse(out["schedule"])  # raises on spec.schedule
    with guard():
        if spec.get("timeZone") is not None:
            out["timeZone"] = check_time_zone(spec["timeZone"])
    with guard():
        out["concurrencyPolicy"] = one_of(spec.get("concurrencyPolicy", "Allow"),
                                          "spec.concurrencyPolicy",
                                          ("Allow", "Forbid", "Replace"))
    with guard():
        out["suspend"] = bool(as_bool(spec.get("suspend", False), "spec.suspend"))
    for field, default in (("successfulJobsHistoryLimit", 3), ("failedJobsHistoryLimit", 1),
                           ("startingDeadlineSeconds", None)):
        with guard():
            value = spec.get(field, default)
            if value is not None:
                out[field] = as_int(value, f"spec.{field}", minimum=0)
    with guard():
        jt = as_map(spec.get("jobTemplate"), "spec.jobTemplate", required=True)
        check_known(jt, _TEMPLATE_FIELDS, "spec.jobTemplate")
        jmeta: dict = {}
        with guard():
            jmeta = normalize_metadata(jt.get("metadata") or {}, KINDS["Job"], _no_name_check,
                                       now=now, path="spec.jobTemplate.metadata",
                                       require_name=False)
        out["jobTemplate"] = {"metadata": jmeta,
                              "spec": normalize_job_spec(jt.get("spec"), now=now,
                                                         path="spec.jobTemplate.spec")}
    return out


def check_time_zone(value: Any) -> str:
    tz = as_str(value, "spec.timeZone")
    try:
        ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValidationError(f"Invalid value: {tz!r}: unknown time zone",
                              field="spec.timeZone") from None
    return tz


def _no_name_check(name: str, path: str) -> None:
    return None  # template names are ignored: the controllers generate the names
