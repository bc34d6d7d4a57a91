"""orchestrator.present.printers: kubectl get tables (golden), pod STATUS logic, AGE, yaml/json."""

import datetime as dt
import json

import pytest
import yaml

from orchestrator.errors import ValidationError
from orchestrator.present.printers import (
    age,
    canonical_kind,
    format_selector,
    human_duration,
    parse_time,
    pod_status,
    table,
    tabwrite,
    to_json,
    to_yaml,
)

NOW = "2024-05-01T12:00:00Z"


def ts(seconds_ago: int) -> str:
    t = parse_time(NOW) - dt.timedelta(seconds=seconds_ago)
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def mkpod(name, ns="default", created=5, phase="Pending", statuses=None, conditions=None,
          node=None, ip=None, containers=1, **status):
    spec = {"containers": [{"name": f"c{i}", "image": "agnhost"} for i in range(containers)]}
    if node:
        spec["nodeName"] = node
    st = {"phase": phase, **status}
    if statuses is not None:
        st["containerStatuses"] = statuses
    if conditions is not None:
        st["conditions"] = conditions
    if ip:
        st["podIP"] = ip
        st["podIPs"] = [{"ip": ip}]
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": ns, "creationTimestamp": ts(created)},
            "spec": spec, "status": st}


def running(name="c0", restarts=0, ready=True, last_finished=None):
    cs = {"name": name, "ready": ready, "restartCount": restarts, "image": "agnhost",
          "state": {"running": {"startedAt": ts(60)}}}
    if last_finished is not None:
        cs["lastState"] = {"terminated": {"exitCode": 1, "reason": "Error",
                                          "finishedAt": ts(last_finished)}}
    return cs


def waiting(reason, name="c0", restarts=0):
    return {"name": name, "ready": False, "restartCount": restarts,
            "state": {"waiting": {"reason": reason}}}


def terminated(reason, code, name="c0"):
    return {"name": name, "ready": False, "restartCount": 0,
            "state": {"terminated": {"exitCode": code, "reason": reason}}}


READY = [{"type": "Initialized", "status": "True"}, {"type": "Ready", "status": "True"},
         {"type": "ContainersReady", "status": "True"}, {"type": "PodScheduled", "status": "True"}]


@pytest.mark.parametrize("seconds,text", [
    (-5, "<invalid>"), (-1, "0s"), (0, "0s"), (5, "5s"), (119, "119s"), (120, "2m"),
    (182, "3m2s"), (599, "9m59s"), (600, "10m"), (179 * 60 + 59, "179m"), (3 * 3600, "3h"),
    (5 * 3600 + 3 * 60, "5h3m"), (8 * 3600, "8h"), (47 * 3600, "47h"), (48 * 3600, "2d"),
    (50 * 3600, "2d2h"), (8 * 86400, "8d"), (400 * 86400, "400d"), (730 * 86400, "2y"),
    (735 * 86400, "2y5d"), (9 * 365 * 86400, "9y"),
])
def test_human_duration(seconds, text):
    assert human_duration(seconds) == text


def test_age_and_time_inputs():
    assert age(ts(65), NOW) == "65s"
    assert age(None, NOW) == "<unknown>"
    assert age(dt.datetime(2024, 5, 1, 11, 0), NOW) == "60m"  # naive datetimes are UTC
    assert age(parse_time(NOW).timestamp() - 30, NOW) == "30s"
    assert age("2024-05-01T13:00:00+01:00", NOW) == "0s"
    assert age("2024-05-01T11:59:59.5Z", NOW) == "0s"
    with pytest.raises(ValidationError):
        parse_time("yesterday")


def test_tabwrite_blocks_like_go():
    # cells in consecutive lines align; a line without tabs ends the block; last cell free
    text = "a\tbb\tc\nccc\td\te\nplain line\nx\ty"
    assert tabwrite(text, minwidth=0, padding=2) == (
        "a    bb  c\n"
        "ccc  d   e\n"
        "plain line\n"
        "x  y")
    # minwidth applies to the padded width
    assert tabwrite("a\tb\nc\td", minwidth=6, padding=3) == "a     b\nc     d"


@pytest.mark.parametrize("name,kind", [("pods", "Pod"), ("po", "Pod"), ("Pod", "Pod"),
                                       ("deploy", "Deployment"), ("rs", "ReplicaSet"),
                                       ("ns", "Namespace"), ("nodes", "Node"),
                                       ("ippools", "IPPool"), ("Widget", "Widget")])
def test_canonical_kind(name, kind):
    assert canonical_kind(name) == kind


@pytest.mark.parametrize("pod,status,ready,restarts", [
    (mkpod("p"), "Pending", "0/1", 0),
    (mkpod("p", node="n1", statuses=[waiting("ContainerCreating")]), "ContainerCreating",
     "0/1", 0),
    (mkpod("p", phase="Running", statuses=[running()], conditions=READY), "Running", "1/1", 0),
    (mkpod("p", phase="Running", statuses=[running(ready=False)]), "Running", "0/1", 0),
    (mkpod("p", phase="Running", statuses=[waiting("CrashLoopBackOff", restarts=4)]),
     "CrashLoopBackOff", "0/1", 4),
    (mkpod("p", phase="Succeeded", statuses=[terminated("Completed", 0)]), "Completed",
     "0/1", 0),
    (mkpod("p", phase="Failed", statuses=[terminated("Error", 2)]), "Error", "0/1", 0),
    (mkpod("p", phase="Failed", statuses=[terminated("", 3)]), "ExitCode:3", "0/1", 0),
    (mkpod("p", phase="Running", containers=2, conditions=READY,
           statuses=[running("c0"), terminated("Completed", 0, name="c1")]),
     "Running", "1/2", 0),
    (mkpod("p", phase="Running", containers=2,
           statuses=[running("c0"), terminated("Completed", 0, name="c1")]),
     "NotReady", "1/2", 0),
    (mkpod("p", phase="Failed", reason="Evicted"), "Evicted", "0/1", 0),
])
def test_pod_status(pod, status, ready, restarts):
    reason, r, total, n, _ = pod_status(pod)
    assert (reason, f"{r}/{total}", n) == (status, ready, restarts)


def test_pod_status_init_containers_and_terminating():
    p = mkpod("p", phase="Pending")
    p["spec"]["initContainers"] = [{"name": "i0"}, {"name": "i1"}]
    p["status"]["initContainerStatuses"] = [
        {"name": "i0", "restartCount": 0, "state": {"terminated": {"exitCode": 0}}},
        {"name": "i1", "restartCount": 1, "state": {"running": {}}}]
    assert pod_status(p)[0] == "Init:1/2"
    p["status"]["initContainerStatuses"][1]["state"] = {"waiting": {"reason": "CrashLoopBackOff"}}
    assert pod_status(p)[0] == "Init:CrashLoopBackOff"
    q = mkpod("q", phase="Running", statuses=[running()], conditions=READY)
    q["metadata"]["deletionTimestamp"] = ts(1)
    assert pod_status(q)[0] == "Terminating"


def test_pods_table_golden():
    pods = [
        mkpod("web-0", created=182, phase="Running", statuses=[running()], conditions=READY,
              node="node-1", ip="10.244.0.5"),
        mkpod("db-0", created=3 * 86400, phase="Running", node="node-2", ip="10.244.1.7",
              statuses=[running(restarts=3, last_finished=125)], conditions=READY),
        mkpod("crash", created=600, phase="Running", node="node-3", ip="10.244.2.2",
              statuses=[waiting("CrashLoopBackOff", restarts=12)]),
        mkpod("big", created=5),
    ]
    assert table("pods", pods, now=NOW) == (
        "NAME    READY   STATUS             RESTARTS       AGE\n"
        "big     0/1     Pending            0              5s\n"
        "crash   0/1     CrashLoopBackOff   12             10m\n"
        "db-0    1/1     Running            3 (2m5s ago)   3d\n"
        "web-0   1/1     Running            0              3m2s\n")
    assert table("pods", pods, wide=True, now=NOW) == (
        "NAME    READY   STATUS             RESTARTS       AGE    IP           NODE     "
        "NOMINATED NODE   READINESS GATES\n"
        "big     0/1     Pending            0              5s     <none>       <none>   "
        "<none>           <none>\n"
        "crash   0/1     CrashLoopBackOff   12             10m    10.244.2.2   node-3   "
        "<none>           <none>\n"
        "db-0    1/1     Running            3 (2m5s ago)   3d     10.244.1.7   node-2   "
        "<none>           <none>\n"
        "web-0   1/1     Running            0              3m2s   10.244.0.5   node-1   "
        "<none>           <none>\n")


def test_pods_all_namespaces_golden():
    pods = [mkpod("b", ns="y", created=30), mkpod("a", ns="x", created=30),
            mkpod("a", ns="kube-system", created=30)]
    assert table("pods", pods, now=NOW, all_namespaces=True) == (
        "NAMESPACE     NAME   READY   STATUS    RESTARTS   AGE\n"
        "kube-system   a      0/1     Pending   0          30s\n"
        "x             a      0/1     Pending   0          30s\n"
        "y             b      0/1     Pending   0          30s\n")


def test_empty_tables():
    assert table("pods", [], now=NOW) == "No resources found in default namespace.\n"
    assert table("pods", [], now=NOW, namespace="x") == "No resources found in x namespace.\n"
    assert table("pods", [], now=NOW, all_namespaces=True) == "No resources found\n"
    assert table("nodes", [], now=NOW) == "No resources found\n"
    assert table("ippools", [], now=NOW) == "NAME   CIDR   SELECTOR\n"


def workload(kind, name, replicas, status, created=7200):
    return {"apiVersion": "apps/v1", "kind": kind,
            "metadata": {"name": name, "namespace": "default", "creationTimestamp": ts(created)},
            "spec": {"replicas": replicas,
                     "selector": {"matchLabels": {"app": name.split("-")[0]}},
                     "template": {"metadata": {"labels": {"app": name}},
                                  "spec": {"containers": [
                                      {"name": "web", "image": "nginx"},
                                      {"name": "side", "image": "agnhost"}]}}},
            "status": status}


def test_deployments_and_replicasets_golden():
    d = workload("Deployment", "web", 3, {"readyReplicas": 2, "updatedReplicas": 3,
                                          "availableReplicas": 2, "replicas": 3})
    assert table("deployments", [d], now=NOW) == (
        "NAME   READY   UP-TO-DATE   AVAILABLE   AGE\n"
        "web    2/3     3            2           120m\n")
    assert table("deploy", [d], wide=True, now=NOW) == (
        "NAME   READY   UP-TO-DATE   AVAILABLE   AGE    CONTAINERS   IMAGES          SELECTOR\n"
        "web    2/3     3            2           120m   web,side     nginx,agnhost   app=web\n")
    rs = workload("ReplicaSet", "web-5d78d8b9c", 3, {"replicas": 3, "readyReplicas": 1})
    assert table("rs", [rs], now=NOW) == (
        "NAME            DESIRED   CURRENT   READY   AGE\n"
        "web-5d78d8b9c   3         3         1       120m\n")


def test_namespaces_nodes_ippools_generic_golden():
    ns = [{"metadata": {"name": "default", "creationTimestamp": ts(30 * 86400)},
           "status": {"phase": "Active"}},
          {"metadata": {"name": "x", "creationTimestamp": ts(40)}}]
    assert table("ns", ns, now=NOW) == (
        "NAME      STATUS   AGE\n"
        "default   Active   30d\n"
        "x         Active   40s\n")
    nodes = [{"metadata": {"name": "node-1", "creationTimestamp": ts(3600),
                           "labels": {"node-role.kubernetes.io/control-plane": ""}},
              "status": {"conditions": [{"type": "Ready", "status": "True"}],
                         "nodeInfo": {"kubeletVersion": "v1.29.0"},
                         "addresses": [{"type": "InternalIP", "address": "10.0.0.1"}]}},
             {"metadata": {"name": "node-2", "creationTimestamp": ts(3600)},
              "spec": {"unschedulable": True},
              "status": {"conditions": [{"type": "Ready", "status": "False"}],
                         "nodeInfo": {"kubeletVersion": "v1.29.0"}}},
             {"metadata": {"name": "node-3", "creationTimestamp": ts(3600)}}]
    assert table("nodes", nodes, now=NOW) == (
        "NAME     STATUS                        ROLES           AGE   VERSION\n"
        "node-1   Ready                         control-plane   60m   v1.29.0\n"
        "node-2   NotReady,SchedulingDisabled   <none>          60m   v1.29.0\n"
        "node-3   Unknown                       <none>          60m   \n")
    wide = table("nodes", nodes[:1], now=NOW, wide=True).splitlines()
    assert wide[0].split() == ["NAME", "STATUS", "ROLES", "AGE", "VERSION", "INTERNAL-IP",
                               "EXTERNAL-IP", "OS-IMAGE", "KERNEL-VERSION", "CONTAINER-RUNTIME"]
    assert wide[1].split()[5:7] == ["10.0.0.1", "<none>"]
    pools = [{"metadata": {"name": "default-ipv4-ippool"},
              "spec": {"cidr": "10.244.0.0/16", "natOutgoing": True, "ipipMode": "Always"}},
             {"metadata": {"name": "edge"},
              "spec": {"cidr": "10.96.0.0/20", "nodeSelector": "zone == 'edge'"}}]
    assert table("ippools", pools, now=NOW) == (
        "NAME                  CIDR            SELECTOR\n"
        "default-ipv4-ippool   10.244.0.0/16   all()\n"
        "edge                  10.96.0.0/20    zone == 'edge'\n")
    assert table("ippools", pools, wide=True, now=NOW) == (
        "NAME                  CIDR            NAT     IPIPMODE   VXLANMODE   DISABLED   "
        "DISABLEBGPEXPORT   SELECTOR\n"
        "default-ipv4-ippool   10.244.0.0/16   true    Always     Never       false      "
        "false              all()\n"
        "edge                  10.96.0.0/20    false   Never      Never       false      "
        "false              zone == 'edge'\n")
    assert table("Widget", [{"metadata": {"name": "w"}}], now=NOW) == (
        "NAME   AGE\n"
        "w      <unknown>\n")


def test_format_selector():
    assert format_selector(None) == "<none>"
    assert format_selector({"matchLabels": {"b": "2", "a": "1"}, "matchExpressions": [
        {"key": "t", "operator": "In", "values": ["y", "x"]},
        {"key": "u", "operator": "NotIn", "values": ["z"]},
        {"key": "g", "operator": "Exists"}, {"key": "h", "operator": "DoesNotExist"}]}) == \
        "a=1,b=2,t in (x,y),u notin (z),g,!h"


def test_yaml_single_and_list():
    a = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "a"}}
    b = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "b"}}
    assert to_yaml(a) == "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: a\n"
    assert to_yaml([a]) == to_yaml(a)
    assert to_yaml([a, b]) == (
        "apiVersion: v1\n"
        "items:\n"
        "- apiVersion: v1\n  kind: Namespace\n  metadata:\n    name: a\n"
        "- apiVersion: v1\n  kind: Namespace\n  metadata:\n    name: b\n"
        "kind: List\n"
        "metadata:\n  resourceVersion: ''\n")
    assert yaml.safe_load(to_yaml([a], as_list=True))["items"] == [a]
    assert yaml.safe_load(to_yaml([]))["items"] == []


def test_json_single_and_list_and_timestamps():
    a = {"apiVersion": "v1", "kind": "Pod",
         "metadata": {"name": "a", "creationTimestamp": dt.datetime(2024, 5, 1, 10, 0)}}
    text = to_json(a)
    assert text.startswith('{\n    "apiVersion": "v1",\n    "kind": "Pod",')
    assert json.loads(text)["metadata"]["creationTimestamp"] == "2024-05-01T10:00:00Z"
    doc = json.loads(to_json([a, a]))
    assert doc["kind"] == "List" and len(doc["items"]) == 2
    assert doc["metadata"] == {"resourceVersion": ""}
    assert "creationTimestamp: '2024-05-01T10:00:00Z'" in to_yaml(a)


def test_get_endpoints_endpointslices_and_networkpolicies_columns():
    from orchestrator.present.printers import table
    ep = {"metadata": {"name": "web", "namespace": "svc"},
          "subsets": [{"addresses": [{"ip": f"10.244.0.{i}"} for i in range(2, 6)],
                       "ports": [{"port": 8080}]}]}
    empty = {"metadata": {"name": "none", "namespace": "svc"}, "subsets": []}
    out = table("ep", [ep, empty], namespace="svc").splitlines()
    assert out[0].split() == ["NAME", "ENDPOINTS", "AGE"]
    assert out[1].split()[1] == "<none>" and out[1].startswith("none")
    assert "10.244.0.2:8080,10.244.0.3:8080,10.244.0.4:8080 + 1 more..." in out[2]
    sl = {"metadata": {"name": "web-abcde", "namespace": "svc"}, "addressType": "IPv4",
          "ports": [{"port": 8080}], "endpoints": [{"addresses": ["10.244.0.2"]}]}
    out = table("endpointslices", [sl], namespace="svc").splitlines()
    assert out[0].split() == ["NAME", "ADDRESSTYPE", "PORTS", "ENDPOINTS", "AGE"]
    assert out[1].split()[:4] == ["web-abcde", "IPv4", "8080", "10.244.0.2"]
    np_ = {"metadata": {"name": "deny", "namespace": "x"}, "spec": {"podSelector": {}}}
    sel = {"metadata": {"name": "web", "namespace": "x"},
           "spec": {"podSelector": {"matchLabels": {"app": "web"}}}}
    out = table("netpol", [np_, sel], namespace="x").splitlines()
    assert out[0].split() == ["NAME", "POD-SELECTOR", "AGE"]
    assert out[1].split()[:2] == ["deny", "<none>"] and out[2].split()[:2] == ["web", "app=web"]


def test_endpoints_without_ports_and_job_durations_as_kubectl():
    from orchestrator.present.describe_workloads import _duration
    from orchestrator.present.printers import table
    ep = {"metadata": {"name": "h", "namespace": "svc"},
          "subsets": [{"addresses": [{"ip": "10.244.0.2"}]}]}
    assert table("endpoints", [ep], namespace="svc").splitlines()[1].split()[1] == "10.244.0.2"
    t0 = "2024-05-01T10:00:00Z"
    assert [_duration(t0, f"2024-05-01T{h}Z") for h in
            ("10:00:07", "10:02:00", "10:05:30", "10:15:30", "13:00:00", "14:20:00")] == \
        ["7s", "2m", "5m30s", "15m", "3h", "4h20m"]
