"""orchestrator.present.describe: kubectl describe text, golden."""
# ruff: noqa: W291  (kubectl pads some cells with a trailing space; the goldens keep it)

import pytest

from orchestrator.present.describe import describe
from orchestrator.present.describe_base import qos_class, rfc1123z, smart_label

NOW = "2024-05-01T12:00:00Z"

POD = {
    "apiVersion": "v1", "kind": "Pod",
    "metadata": {"name": "web-5d78d8b9c-x7k2p", "namespace": "default",
                 "creationTimestamp": "2024-05-01T11:57:58Z",
                 "labels": {"pod-template-hash": "5d78d8b9c", "app": "web"},
                 "ownerReferences": [{"kind": "ReplicaSet", "name": "web-5d78d8b9c",
                                      "uid": "u1", "controller": True}]},
    "spec": {"nodeName": "node-1", "containers": [{
        "name": "web", "image": "nginx", "args": ["--port", "80"],
        "ports": [{"containerPort": 80, "protocol": "TCP", "name": "http"},
                  {"containerPort": 53, "protocol": "UDP"}],
        "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}},
        "env": [{"name": "MODE", "value": "fast"}]}],
        "tolerations": [{"operator": "Exists"},
                        {"key": "node.kubernetes.io/not-ready", "operator": "Exists",
                         "effect": "NoExecute", "tolerationSeconds": 300},
                        {"key": "dedicated", "operator": "Equal", "value": "web",
                         "effect": "NoSchedule"}]},
    "status": {"phase": "Running", "hostIP": "10.0.0.1", "podIP": "10.244.1.5",
               "podIPs": [{"ip": "10.244.1.5"}], "startTime": "2024-05-01T11:57:58Z",
               "conditions": [{"type": "Initialized", "status": "True"},
                              {"type": "Ready", "status": "True"},
                              {"type": "ContainersReady", "status": "True"},
                              {"type": "PodScheduled", "status": "True"}],
               "containerStatuses": [{
                   "name": "web", "ready": True, "restartCount": 1, "image": "nginx",
                   "containerID": "calinet://4711",
                   "state": {"running": {"startedAt": "2024-05-01T11:58:00Z"}},
                   "lastState": {"terminated": {"exitCode": 137, "reason": "Error",
                                                "startedAt": "2024-05-01T11:57:59Z",
                                                "finishedAt": "2024-05-01T11:57:59Z"}}}]},
}

EVENTS = [
    {"type": "Warning", "reason": "BackOff", "message": "Back-off restarting\nfailed container",
     "source": {"component": "kubelet"}, "firstTimestamp": "2024-05-01T11:58:00Z",
     "lastTimestamp": "2024-05-01T11:59:30Z", "count": 3},
    {"type": "Normal", "reason": "Scheduled",
     "message": "Successfully assigned default/web-5d78d8b9c-x7k2p to node-1",
     "reportingController": "default-scheduler", "firstTimestamp": "2024-05-01T11:57:58Z",
     "lastTimestamp": "2024-05-01T11:57:58Z"},
]


def test_describe_running_pod_golden():
    assert describe("pod", POD, EVENTS, now=NOW) == """\
Name:             web-5d78d8b9c-x7k2p
Namespace:        default
Priority:         0
Service Account:  default
Node:             node-1/10.0.0.1
Start Time:       Wed, 01 May 2024 11:57:58 +0000
Labels:           app=web
                  pod-template-hash=5d78d8b9c
Annotations:      <none>
Status:           Running
IP:               10.244.1.5
IPs:
  IP:           10.244.1.5
Controlled By:  ReplicaSet/web-5d78d8b9c
Containers:
  web:
    Container ID:  calinet://4711
    Image:         nginx
    Image ID:      
    Ports:         80/TCP, 53/UDP
    Host Ports:    0/TCP, 0/UDP
    Args:
      --port
      80
    State:          Running
      Started:      Wed, 01 May 2024 11:58:00 +0000
    Last State:     Terminated
      Reason:       Error
      Exit Code:    137
      Started:      Wed, 01 May 2024 11:57:59 +0000
      Finished:     Wed, 01 May 2024 11:57:59 +0000
    Ready:          True
    Restart Count:  1
    Requests:
      cpu:     100m
      memory:  64Mi
    Environment:
      MODE:  fast
    Mounts:  <none>
Conditions:
  Type              Status
  Initialized       True 
  Ready             True 
  ContainersReady   True 
  PodScheduled      True 
Volumes:            <none>
QoS Class:          Burstable
Node-Selectors:     <none>
Tolerations:        op=Exists
                    node.kubernetes.io/not-ready:NoExecute op=Exists for 300s
                    dedicated=web:NoSchedule
Events:
  Type     Reason     Age               From               Message
  ----     ------     ----              ----               -------
  Normal   Scheduled  2m2s              default-scheduler  Successfully assigned default/web-5d78d8b9c-x7k2p to node-1
  Warning  BackOff    30s (x3 over 2m)  kubelet            Back-off restarting failed container
"""


def test_describe_pending_pod_golden():
    pod = {"metadata": {"name": "big", "namespace": "x"},
           "spec": {"containers": [{"name": "c", "image": "agnhost"}],
                    "nodeSelector": {"disk": "ssd"}},
           "status": {"phase": "Pending", "conditions": [
               {"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                "message": "0/3 nodes are available: 3 Insufficient cpu."}]}}
    assert describe("Pod", pod, [], now=NOW) == """\
Name:             big
Namespace:        x
Priority:         0
Service Account:  default
Node:             <none>
Labels:           <none>
Annotations:      <none>
Status:           Pending
IP:               
IPs:              <none>
Containers:
  c:
    Image:        agnhost
    Port:         <none>
    Host Port:    <none>
    Environment:  <none>
    Mounts:       <none>
Conditions:
  Type           Status
  PodScheduled   False 
Volumes:         <none>
QoS Class:       BestEffort
Node-Selectors:  disk=ssd
Tolerations:     <none>
Events:          <none>
"""
    # events=None: no Events section at all
    assert "Events" not in describe("Pod", pod, None, now=NOW)


@pytest.mark.parametrize("resources,qos", [
    ([{}], "BestEffort"),
    ([{"requests": {"cpu": "1"}}], "Burstable"),
    ([{"limits": {"cpu": "1", "memory": "1Gi"}}], "Guaranteed"),
    ([{"limits": {"cpu": "1", "memory": "1Gi"}, "requests": {"cpu": "1000m"}}], "Guaranteed"),
    ([{"limits": {"cpu": "1", "memory": "1Gi"}, "requests": {"cpu": "500m"}}], "Burstable"),
    ([{"limits": {"cpu": "1", "memory": "1Gi"}}, {}], "Burstable"),
])
def test_qos_class(resources, qos):
    pod = {"spec": {"containers": [{"name": f"c{i}", "resources": r}
                                   for i, r in enumerate(resources)]}}
    assert qos_class(pod) == qos


def test_rfc1123z_and_smart_label():
    assert rfc1123z("2024-02-29T07:08:09Z") == "Thu, 29 Feb 2024 07:08:09 +0000"
    assert rfc1123z(None) == "<unset>"
    assert smart_label("ipipMode") == "Ipip Mode"
    assert smart_label("apiVersion") == "API Version"
    assert smart_label("disableBGPExport") == "Disable BGP Export"
    assert smart_label("cidr") == "Cidr"
    assert smart_label("a.b") == "a.b"


def deployment():
    template = {"metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "web", "image": "nginx",
                                         "ports": [{"containerPort": 80,
                                                    "protocol": "TCP"}]}]}}
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "default", "uid": "d1",
                         "creationTimestamp": "2024-05-01T10:00:00Z", "labels": {"app": "web"},
                         "annotations": {"deployment.kubernetes.io/revision": "1"}},
            "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}},
                     "template": template},
            "status": {"replicas": 3, "updatedReplicas": 3, "readyReplicas": 3,
                       "availableReplicas": 3, "conditions": [
                           {"type": "Available", "status": "True",
                            "reason": "MinimumReplicasAvailable"},
                           {"type": "Progressing", "status": "True",
                            "reason": "NewReplicaSetAvailable"}]}}


def replicaset(name="web-5d78d8b9c", replicas=3, created="2024-05-01T10:00:00Z"):
    d = deployment()
    return {"apiVersion": "apps/v1", "kind": "ReplicaSet",
            "metadata": {"name": name, "namespace": "default", "uid": name,
                         "creationTimestamp": created,
                         "labels": {"app": "web", "pod-template-hash": name[4:]},
                         "ownerReferences": [{"kind": "Deployment", "name": "web", "uid": "d1",
                                              "controller": True}]},
            "spec": {"replicas": replicas,
                     "selector": {"matchLabels": {"app": "web", "pod-template-hash": name[4:]}},
                     "template": d["spec"]["template"]},
            "status": {"replicas": replicas, "readyReplicas": replicas}}


def test_describe_deployment_golden():
    scaled_down = replicaset("web-11111", 0, "2024-05-01T09:00:00Z")
    old = replicaset("web-22222", 1, "2024-05-01T09:30:00Z")
    old["spec"]["template"] = {"spec": {"containers": [{"name": "web", "image": "nginx:old"}]}}
    text = describe("deployment", deployment(), [], now=NOW,
                    related=[old, replicaset(), scaled_down])
    assert text == """\
Name:                   web
Namespace:              default
CreationTimestamp:      Wed, 01 May 2024 10:00:00 +0000
Labels:                 app=web
Annotations:            deployment.kubernetes.io/revision: 1
Selector:               app=web
Replicas:               3 desired | 3 updated | 3 total | 3 available | 0 unavailable
StrategyType:           RollingUpdate
MinReadySeconds:        0
RollingUpdateStrategy:  25% max unavailable, 25% max surge
Pod Template:
  Labels:  app=web
  Containers:
   web:
    Image:        nginx
    Port:         80/TCP
    Host Port:    0/TCP
    Environment:  <none>
    Mounts:       <none>
  Volumes:        <none>
Conditions:
  Type           Status  Reason
  ----           ------  ------
  Available      True    MinimumReplicasAvailable
  Progressing    True    NewReplicaSetAvailable
OldReplicaSets:  web-22222 (1/1 replicas created)
NewReplicaSet:   web-5d78d8b9c (3/3 replicas created)
Events:          <none>
"""


def pod_of(rs_uid, name, phase, node="node-1", cpu=None):
    res = {"requests": {"cpu": cpu}, "limits": {"memory": "128Mi"}} if cpu else {}
    return {"kind": "Pod", "metadata": {"name": name, "namespace": "default",
                                        "creationTimestamp": "2024-05-01T11:00:00Z",
                                        "ownerReferences": [{"uid": rs_uid,
                                                             "controller": True}]},
            "spec": {"nodeName": node, "containers": [{"name": "c", "resources": res}]},
            "status": {"phase": phase}}


def test_describe_replicaset_counts_its_pods():
    rs = replicaset()
    pods = [pod_of("web-5d78d8b9c", "a", "Running"), pod_of("web-5d78d8b9c", "b", "Pending"),
            pod_of("web-5d78d8b9c", "c", "Running"), pod_of("other", "d", "Failed")]
    text = describe("rs", rs, [], now=NOW, related=pods)
    assert text.splitlines()[:9] == [
        "Name:           web-5d78d8b9c",
        "Namespace:      default",
        "Selector:       app=web,pod-template-hash=5d78d8b9c",
        "Labels:         app=web",
        "                pod-template-hash=5d78d8b9c",
        "Annotations:    <none>",
        "Controlled By:  Deployment/web",
        "Replicas:       3 current / 3 desired",
        "Pods Status:    2 Running / 1 Waiting / 0 Succeeded / 0 Failed",
    ]


def test_describe_node_golden():
    node = {"apiVersion": "v1", "kind": "Node",
            "metadata": {"name": "node-1", "creationTimestamp": "2024-04-29T11:00:00Z",
                         "labels": {"kubernetes.io/hostname": "node-1"}},
            "spec": {"podCIDR": "10.244.0.0/24",
                     "taints": [{"key": "dedicated", "value": "db", "effect": "NoSchedule"}]},
            "status": {"capacity": {"cpu": "2", "memory": "4Gi", "pods": "110"},
                       "addresses": [{"type": "InternalIP", "address": "10.0.0.1"}],
                       "conditions": [{"type": "Ready", "status": "True",
                                       "reason": "KubeletReady",
                                       "message": "kubelet is posting ready status"}]}}
    pods = [pod_of("x", "web-0", "Running", cpu="500m"), pod_of("x", "idle", "Running"),
            pod_of("x", "done", "Succeeded"), pod_of("x", "far", "Running", node="node-2")]
    assert describe("node", node, None, now=NOW, related=pods) == """\
Name:               node-1
Roles:              <none>
Labels:             kubernetes.io/hostname=node-1
Annotations:        <none>
CreationTimestamp:  Mon, 29 Apr 2024 11:00:00 +0000
Taints:             dedicated=db:NoSchedule
Unschedulable:      false
Conditions:
  Type    Status  Reason        Message
  ----    ------  ------        -------
  Ready   True    KubeletReady  kubelet is posting ready status
Addresses:
  InternalIP:  10.0.0.1
Capacity:
  cpu:                2
  memory:             4Gi
  pods:               110
PodCIDR:              10.244.0.0/24
Non-terminated Pods:  (2 in total)
  Namespace           Name   CPU Requests  CPU Limits  Memory Requests  Memory Limits  Age
  ---------           ----   ------------  ----------  ---------------  -------------  ---
  default             idle   0 (0%)        0 (0%)      0 (0%)           0 (0%)         60m
  default             web-0  500m (25%)    0 (0%)      128Mi (3%)       128Mi (3%)     60m
"""


def test_describe_namespace_and_generic_ippool():
    ns = {"metadata": {"name": "x", "labels": {"kubernetes.io/metadata.name": "x"}},
          "status": {"phase": "Active"}}
    assert describe("ns", ns) == """\
Name:         x
Labels:       kubernetes.io/metadata.name=x
Annotations:  <none>
Status:       Active

No resource quota.

No LimitRange resource.
"""
    pool = {"apiVersion": "projectcalico.org/v3", "kind": "IPPool",
            "metadata": {"name": "default-ipv4-ippool", "uid": "p1",
                         "annotations": {"kubectl.kubernetes.io/last-applied-configuration":
                                         "{}"}},
            "spec": {"cidr": "10.244.0.0/16", "blockSize": 26, "natOutgoing": True,
                     "allowedUses": ["Workload", "Tunnel"]}}
    assert describe("ippool", pool, now=NOW) == """\
Name:         default-ipv4-ippool
Namespace:    
Labels:       <none>
Annotations:  <none>
API Version:  projectcalico.org/v3
Kind:         IPPool
Metadata:
  UID:  p1
Spec:
  Allowed Uses:
    Workload
    Tunnel
  Block Size:    26
  Cidr:          10.244.0.0/16
  Nat Outgoing:  true
Events:          <none>
"""


def test_events_series_count_and_order():
    pod = {"metadata": {"name": "p"}, "spec": {"containers": []}, "status": {}}
    events = [
        {"type": "Warning", "reason": "Late", "message": "m3",
         "lastTimestamp": "2024-05-01T11:59:00Z", "firstTimestamp": "2024-05-01T11:50:00Z",
         "count": 4, "source": {"component": "kubelet"}},
        {"type": "Normal", "reason": "Series", "message": "m2",
         "eventTime": "2024-05-01T11:40:00Z", "reportingController": "calinet-kubelet",
         "series": {"count": 7, "lastObservedTime": "2024-05-01T11:58:30Z"},
         "lastTimestamp": "2024-05-01T11:58:30Z"},
        {"type": "Normal", "reason": "NoTime", "message": "m1"},
    ]
    lines = describe("pod", pod, events, now=NOW).splitlines()
    i = lines.index("Events:")
    assert lines[i + 3:] == [
        "  Normal   NoTime  <unknown>" + " " * 10 + " " * 17 + "m1",
        "  Normal   Series  90s (x7 over 20m)  calinet-kubelet  m2",
        "  Warning  Late    60s (x4 over 10m)  kubelet          m3",
    ]
