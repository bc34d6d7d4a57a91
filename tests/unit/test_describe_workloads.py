"""kubectl describe for Service, StatefulSet, DaemonSet, Job and CronJob: golden files in
tests/fixtures/describe (regenerate with CALINET_UPDATE_GOLDEN=1 after checking the diff)."""

import os
from pathlib import Path

import pytest

from orchestrator.present.describe import describe

GOLDEN = Path(__file__).resolve().parents[1] / "fixtures" / "describe"
NOW = "2024-05-01T12:00:00Z"
SVC = {
    "apiVersion": "v1",
    "kind": "Service",
    "metadata": {"name": "web", "namespace": "svc", "creationTimestamp": "2024-05-01T11:00:00Z"},
    "spec": {
        "type": "NodePort",
        "selector": {"app": "web"},
        "clusterIP": "10.96.12.3",
        "clusterIPs": ["10.96.12.3"],
        "sessionAffinity": "ClientIP",
        "ports": [
            {
                "name": "http",
                "port": 80,
                "targetPort": "http-alt",
                "protocol": "TCP",
                "nodePort": 30080,
            },
            {"name": "dns", "port": 53, "targetPort": 5353, "protocol": "UDP", "nodePort": 30053},
        ],
    },
}
SLICES = [
    {
        "kind": "EndpointSlice",
        "metadata": {
            "name": "web-abc",
            "namespace": "svc",
            "labels": {"kubernetes.io/service-name": "web"},
        },
        "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
        "endpoints": [
            {"addresses": [f"10.244.0.{i}"], "conditions": {"ready": i != 4}} for i in range(2, 8)
        ],
    },
    {
        "kind": "EndpointSlice",
        "metadata": {
            "name": "other",
            "namespace": "svc",
            "labels": {"kubernetes.io/service-name": "other"},
        },
        "ports": [{"name": "http", "port": 9, "protocol": "TCP"}],
        "endpoints": [{"addresses": ["10.244.9.9"], "conditions": {"ready": True}}],
    },
]
TMPL = {
    "metadata": {"labels": {"app": "db"}},
    "spec": {
        "containers": [
            {"name": "db", "image": "agnhost", "ports": [{"containerPort": 80, "protocol": "TCP"}]}
        ]
    },
}
STS = {
    "kind": "StatefulSet",
    "metadata": {
        "name": "db",
        "namespace": "wl",
        "uid": "s1",
        "creationTimestamp": "2024-05-01T11:00:00Z",
    },
    "spec": {
        "replicas": 3,
        "serviceName": "db",
        "selector": {"matchLabels": {"app": "db"}},
        "template": TMPL,
    },
    "status": {"replicas": 2},
}
PODS = [
    {
        "kind": "Pod",
        "metadata": {
            "name": f"db-{i}",
            "namespace": "wl",
            "ownerReferences": [{"uid": "s1", "controller": True}],
        },
        "status": {"phase": ph},
    }
    for i, ph in enumerate(["Running", "Pending"])
]
DS = {
    "kind": "DaemonSet",
    "metadata": {"name": "agent", "namespace": "wl", "uid": "s1"},
    "spec": {"selector": {"matchLabels": {"app": "db"}}, "template": TMPL},
    "status": {
        "desiredNumberScheduled": 3,
        "currentNumberScheduled": 3,
        "updatedNumberScheduled": 3,
        "numberAvailable": 2,
        "numberMisscheduled": 0,
    },
}
JOB = {
    "kind": "Job",
    "metadata": {
        "name": "tick-28567",
        "namespace": "wl",
        "uid": "j1",
        "ownerReferences": [{"kind": "CronJob", "name": "tick", "uid": "c1", "controller": True}],
    },
    "spec": {"completions": 3, "parallelism": 1, "backoffLimit": 1, "template": TMPL},
    "status": {
        "startTime": "2024-05-01T11:59:00Z",
        "completionTime": "2024-05-01T11:59:07Z",
        "succeeded": 3,
        "conditions": [{"type": "Complete", "status": "True"}],
    },
}
CJ = {
    "kind": "CronJob",
    "metadata": {"name": "tick", "namespace": "wl", "uid": "c1"},
    "spec": {
        "schedule": "*/5 * * * *",
        "concurrencyPolicy": "Forbid",
        "jobTemplate": {"spec": {"template": TMPL}},
    },
    "status": {"lastScheduleTime": "2024-05-01T11:55:00Z"},
}
JOB2 = {
    "kind": "Job",
    "metadata": {
        "name": "tick-28568",
        "namespace": "wl",
        "ownerReferences": [{"uid": "c1", "controller": True}],
    },
    "status": {},
}

CASES = {
    "service": ("svc", SVC, [], SLICES),
    "statefulset": ("sts", STS, None, PODS),
    "daemonset": ("ds", DS, None, PODS),
    "job": ("job", JOB, [], []),
    "cronjob": ("cj", CJ, [], [JOB, JOB2]),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_describe_golden(name):
    kind, obj, events, related = CASES[name]
    got = describe(kind, obj, events, now=NOW, related=related)
    path = GOLDEN / f"{name}.txt"
    if os.environ.get("CALINET_UPDATE_GOLDEN"):
        path.write_text(got)
    assert got == path.read_text()


def test_service_without_endpoints_and_headless():
    svc = {
        "kind": "Service",
        "metadata": {"name": "h", "namespace": "svc"},
        "spec": {"clusterIP": "None", "selector": {"app": "x"}, "ports": [{"port": 80}]},
    }
    out = describe("service", svc, None, now=NOW, related=[])
    assert "IP:                       None" in out
    assert (
        "Endpoints:                <none>" in out
        and "Port:                     <unset>  80/TCP" in out
    )
    assert "NodePort" not in out and "External Traffic Policy" not in out
