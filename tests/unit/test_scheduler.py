"""orchestrator.control.scheduler: each filter, scoring, batch spreading, FitError messages."""

from collections import Counter

import pytest

from orchestrator.control.scheduler import (
    NodeInfo,
    Resources,
    node_infos,
    pod_requests,
    schedule,
    schedule_many,
    tolerates,
)
from orchestrator.errors import ValidationError

GI = 2**30


def pod(name="p", cpu=None, memory=None, selector=None, tolerations=None, node_name=None,
        owner=None, affinity=None, ns="default"):
    requests = {}
    if cpu is not None:
        requests["cpu"] = cpu
    if memory is not None:
        requests["memory"] = memory
    spec = {"containers": [{"name": "c", "image": "agnhost",
                            "resources": {"requests": requests} if requests else {}}]}
    if selector:
        spec["nodeSelector"] = selector
    if tolerations is not None:
        spec["tolerations"] = tolerations
    if node_name:
        spec["nodeName"] = node_name
    if affinity:
        spec["affinity"] = affinity
    meta = {"name": name, "namespace": ns}
    if owner:
        meta["ownerReferences"] = [{"apiVersion": "apps/v1", "kind": "ReplicaSet",
                                    "name": "rs", "uid": owner, "controller": True}]
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": spec}


def node(name, cpu=4000, memory=8 * GI, pods=110, **kw):
    return NodeInfo(name=name, capacity=Resources(cpu, memory, pods), **kw)


def three():
    return [node("node-1"), node("node-2"), node("node-3")]


def test_empty_cluster_places_on_lowest_name():
    d = schedule(pod(), three())
    assert d.node == "node-1" and d.scheduled and d.reasons == ""
    assert set(d.scores) == {"node-1", "node-2", "node-3"}
    assert len(set(d.scores.values())) == 1


def test_unschedulable_node_filtered_unless_tolerated():
    nodes = [node("node-1", unschedulable=True), node("node-2", unschedulable=True)]
    d = schedule(pod(), nodes)
    assert d.node is None
    assert d.reasons == "0/2 nodes are available: 2 node(s) were unschedulable."
    tol = [{"key": "node.kubernetes.io/unschedulable", "operator": "Exists",
            "effect": "NoSchedule"}]
    assert schedule(pod(tolerations=tol), nodes).node == "node-1"


def test_not_ready_node_gets_not_ready_taint():
    nodes = [node("node-1", ready=False), node("node-2")]
    d = schedule(pod(), nodes)
    assert d.node == "node-2"
    assert d.filtered == {"node-1": ["node(s) had untolerated taint "
                                     "{node.kubernetes.io/not-ready: }"]}
    tol = [{"key": "node.kubernetes.io/not-ready", "operator": "Exists"}]
    d = schedule(pod(tolerations=tol), [node("node-1", ready=False)])
    assert d.node == "node-1"


def test_node_name_pins():
    d = schedule(pod(node_name="node-3"), three())
    assert d.node == "node-3"
    assert d.filtered["node-1"] == ["node(s) didn't match the requested node name"]
    d = schedule(pod(node_name="node-9"), three())
    assert d.node is None
    assert d.reasons == ("0/3 nodes are available: 3 node(s) didn't match the requested "
                         "node name.")


def test_resources_fit_cpu_memory_pods():
    nodes = [node("node-1", cpu=1000, allocated=Resources(800, 0, 1)),
             node("node-2", memory=GI, allocated=Resources(0, GI // 2, 1)),
             node("node-3", pods=2, allocated=Resources(0, 0, 2))]
    d = schedule(pod(cpu="500m", memory="600Mi"), nodes)
    assert d.node is None
    assert d.filtered == {"node-1": ["Insufficient cpu"], "node-2": ["Insufficient memory"],
                          "node-3": ["Too many pods"]}
    assert d.reasons == ("0/3 nodes are available: 1 Insufficient cpu, 1 Insufficient memory, "
                         "1 Too many pods.")
    # exactly the free amount fits
    assert schedule(pod(cpu="200m"), nodes[:1]).node == "node-1"
    assert schedule(pod(cpu="201m"), nodes[:1]).node is None


def test_both_resources_insufficient_counted_separately():
    nodes = [node("node-1", cpu=100, memory=GI), node("node-2", cpu=100, memory=GI)]
    d = schedule(pod(cpu="1", memory="2Gi"), nodes)
    assert d.reasons == "0/2 nodes are available: 2 Insufficient cpu, 2 Insufficient memory."


def test_pod_without_requests_only_checks_pod_count():
    n = node("node-1", cpu=0, memory=0)
    assert schedule(pod(), [n]).node == "node-1"


def test_limits_default_requests():
    p = pod()
    p["spec"]["containers"][0]["resources"] = {"limits": {"cpu": "2", "memory": "1Gi"}}
    exact, _ = pod_requests(p)
    assert exact == Resources(2000, GI, 1)
    assert schedule(p, [node("node-1", cpu=1000)]).reasons == \
        "0/1 nodes are available: 1 Insufficient cpu."


def test_init_containers_max_with_sum():
    p = pod(cpu="100m", memory="10Mi")
    p["spec"]["containers"].append({"name": "d", "resources": {"requests": {"cpu": "200m"}}})
    p["spec"]["initContainers"] = [{"name": "i", "resources": {"requests": {"cpu": "1"}}}]
    exact, nonzero = pod_requests(p)
    assert exact == Resources(1000, 10 * 2**20, 1)
    # scoring defaults: container d has no memory request -> 200Mi
    assert nonzero.memory == 10 * 2**20 + 200 * 2**20


def test_node_selector():
    nodes = [node("node-1", labels={"zone": "a"}), node("node-2", labels={"zone": "b"}),
             node("node-3")]
    d = schedule(pod(selector={"zone": "b"}), nodes)
    assert d.node == "node-2"
    d = schedule(pod(selector={"zone": "c"}), nodes)
    assert d.reasons == ("0/3 nodes are available: 3 node(s) didn't match Pod's node "
                         "affinity/selector.")


def test_required_node_affinity():
    aff = {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
        "nodeSelectorTerms": [
            {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["x", "y"]},
                                  {"key": "gpu", "operator": "DoesNotExist"}]},
            {"matchFields": [{"key": "metadata.name", "operator": "In",
                              "values": ["node-3"]}]}]}}}
    nodes = [node("node-1", labels={"zone": "x", "gpu": "1"}), node("node-2", labels={"zone": "y"}),
             node("node-3", labels={"zone": "z"})]
    d = schedule(pod(affinity=aff), nodes)
    assert d.node == "node-2"
    assert set(d.scores) == {"node-2", "node-3"}
    gt = {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
        "nodeSelectorTerms": [{"matchExpressions": [
            {"key": "cores", "operator": "Gt", "values": ["4"]}]}]}}}
    nodes = [node("node-1", labels={"cores": "4"}), node("node-2", labels={"cores": "8"}),
             node("node-3", labels={"cores": "many"})]
    assert schedule(pod(affinity=gt), nodes).node == "node-2"


def test_bad_affinity_operator_names_field():
    aff = {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
        "nodeSelectorTerms": [{"matchExpressions": [{"key": "a", "operator": "Like"}]}]}}}
    with pytest.raises(ValidationError) as err:
        schedule(pod(affinity=aff), three())
    assert "Pod default/p" in str(err.value)
    assert err.value.field.endswith("nodeSelectorTerms[0].matchExpressions[0].operator")


@pytest.mark.parametrize("tol,taint,ok", [
    ({"key": "k", "operator": "Equal", "value": "v", "effect": "NoSchedule"},
     {"key": "k", "value": "v", "effect": "NoSchedule"}, True),
    ({"key": "k", "value": "v"}, {"key": "k", "value": "v", "effect": "NoExecute"}, True),
    ({"key": "k", "value": "w"}, {"key": "k", "value": "v", "effect": "NoSchedule"}, False),
    ({"key": "k", "operator": "Exists"}, {"key": "k", "value": "v", "effect": "NoSchedule"},
     True),
    ({"key": "k", "operator": "Exists", "effect": "NoExecute"},
     {"key": "k", "value": "", "effect": "NoSchedule"}, False),
    ({"operator": "Exists"}, {"key": "any", "value": "x", "effect": "NoExecute"}, True),
    ({"operator": "Exists", "effect": "NoSchedule"},
     {"key": "any", "value": "x", "effect": "NoExecute"}, False),
    ({"key": "j", "operator": "Exists"}, {"key": "k", "value": "", "effect": "NoSchedule"},
     False),
])
def test_tolerates(tol, taint, ok):
    assert tolerates(tol, taint) is ok


def test_taint_filter_noschedule_and_noexecute():
    nodes = [node("node-1", taints=[{"key": "dedicated", "value": "db", "effect": "NoSchedule"}]),
             node("node-2", taints=[{"key": "evict", "value": "", "effect": "NoExecute"}]),
             node("node-3", taints=[{"key": "soft", "value": "", "effect": "PreferNoSchedule"}])]
    d = schedule(pod(), nodes)
    assert d.node == "node-3"  # PreferNoSchedule does not filter
    assert d.filtered == {"node-1": ["node(s) had untolerated taint {dedicated: db}"],
                          "node-2": ["node(s) had untolerated taint {evict: }"]}
    only_db = [{"key": "dedicated", "operator": "Equal", "value": "db", "effect": "NoSchedule"}]
    d = schedule(pod(tolerations=only_db), nodes[:2])
    assert d.node == "node-1"
    d = schedule(pod(tolerations=[{"operator": "Exists"}]), nodes[:2])
    assert d.node == "node-1" and set(d.scores) == {"node-1", "node-2"}


def test_bad_toleration_rejected():
    with pytest.raises(ValidationError) as err:
        schedule(pod(tolerations=[{"key": "k", "operator": "Maybe"}]), three())
    assert err.value.field == "spec.tolerations[0].operator"
    with pytest.raises(ValidationError):
        schedule(pod(tolerations=[{"key": "k", "operator": "Exists", "value": "v"}]), three())


def test_filter_order_first_failure_wins():
    # unschedulable and also too small: only the first filter's reason is reported
    nodes = [node("node-1", unschedulable=True, cpu=0)]
    assert schedule(pod(cpu="1"), nodes).filtered == {"node-1": ["node(s) were unschedulable"]}


def test_mixed_reasons_message_sorted_like_kubernetes():
    nodes = [node("node-1", cpu=100), node("node-2", labels={}), node("node-3")]
    d = schedule(pod(cpu="1", selector={"disk": "ssd"}), nodes)
    # node-1 fails the selector first too
    assert d.reasons == ("0/3 nodes are available: 3 node(s) didn't match Pod's node "
                         "affinity/selector.")
    nodes = [node("node-1", cpu=100, labels={"disk": "ssd"}), node("node-2"), node("node-3")]
    d = schedule(pod(cpu="1", selector={"disk": "ssd"}), nodes)
    assert d.reasons == ("0/3 nodes are available: 1 Insufficient cpu, 2 node(s) didn't "
                         "match Pod's node affinity/selector.")


def test_histogram_sorts_as_strings():
    nodes = [node(f"n{i:02d}", unschedulable=i < 10, cpu=4000 if i < 10 else 0)
             for i in range(12)]
    d = schedule(pod(cpu="1"), nodes)
    # "10 ..." sorts before "2 ..." exactly as Go's sort.Strings does
    assert d.reasons == ("0/12 nodes are available: 10 node(s) were unschedulable, "
                         "2 Insufficient cpu.")


def test_no_nodes():
    assert schedule(pod(), []).reasons == "no nodes available to schedule pods"


def test_least_allocated_prefers_emptier_node():
    nodes = [node("node-1", allocated=Resources(3000, 6 * GI, 3)),
             node("node-2", allocated=Resources(1000, 1 * GI, 1)),
             node("node-3", allocated=Resources(2000, 2 * GI, 2))]
    d = schedule(pod(cpu="500m", memory="1Gi"), nodes)
    assert d.node == "node-2"
    parts = d.plugin_scores
    la = {n: parts[n]["NodeResourcesLeastAllocated"] for n in parts}
    assert la["node-2"] > la["node-3"] > la["node-1"]
    # node-2: cpu (4000-1500)*100//4000 = 62, mem (8-2)*100//8 = 75 -> 68
    assert la["node-2"] == 68


def test_best_effort_pods_count_for_scoring():
    # node-1 holds best-effort pods: zero requests, but scoring sees 100m/200Mi each
    infos = node_infos([node_manifest("node-1"), node_manifest("node-2")],
                       [bound(pod(f"be{i}"), "node-1") for i in range(5)])
    assert infos[0].allocated == Resources(0, 0, 5)
    assert infos[0].allocated_nonzero == Resources(500, 1000 * 2**20, 5)
    assert schedule(pod("new"), infos).node == "node-2"


def test_prefer_no_schedule_penalized():
    nodes = [node("node-1", taints=[{"key": "soft", "value": "", "effect": "PreferNoSchedule"}]),
             node("node-2")]
    d = schedule(pod(), nodes)
    assert d.node == "node-2"
    assert d.plugin_scores["node-1"]["TaintToleration"] == 0
    tol = [{"key": "soft", "operator": "Exists"}]
    assert schedule(pod(tolerations=tol), nodes).node == "node-1"


def test_selector_spread_prefers_node_without_siblings():
    nodes = [node("node-1", owner_counts={"rs-1": 2}), node("node-2", owner_counts={"rs-1": 1}),
             node("node-3", owner_counts={"other": 5})]
    assert schedule(pod(owner="rs-1"), nodes).node == "node-3"
    d = schedule(pod(owner="rs-1"), nodes[:2])
    assert d.node == "node-2"


def test_spread_six_replicas_over_three_nodes():
    pods = [pod(f"web-{i}", cpu="100m", memory="64Mi", owner="rs-web") for i in range(6)]
    nodes = three()
    decisions = schedule_many(pods, nodes)
    placed = Counter(d.node for d in decisions)
    assert placed == {"node-1": 2, "node-2": 2, "node-3": 2}
    assert [d.node for d in decisions[:3]] == ["node-1", "node-2", "node-3"]
    # inputs untouched
    assert all(n.allocated == Resources() and n.owner_counts == {} for n in nodes)


def test_spread_accounts_for_existing_replicas():
    nodes = node_infos([node_manifest(f"node-{i}") for i in (1, 2, 3)],
                       [bound(pod("old-0", owner="rs-web"), "node-1"),
                        bound(pod("old-1", owner="rs-web"), "node-1")])
    decisions = schedule_many([pod(f"new-{i}", owner="rs-web") for i in range(4)], nodes)
    placed = Counter(d.node for d in decisions)
    assert placed == {"node-2": 2, "node-3": 2}


def test_schedule_many_fills_then_fails():
    nodes = [node("node-1", cpu=1000), node("node-2", cpu=1000)]
    decisions = schedule_many([pod(f"p{i}", cpu="600m") for i in range(3)], nodes)
    assert [d.node for d in decisions] == ["node-1", "node-2", None]
    assert decisions[2].reasons == "0/2 nodes are available: 2 Insufficient cpu."


def test_duplicate_nodes_rejected():
    with pytest.raises(ValidationError, match="duplicate node"):
        schedule(pod(), [node("a"), node("a")])


# --- node_infos from manifests ---------------------------------------------------------

def node_manifest(name, cpu="4", memory="8Gi", pods="110", ready="True", **spec):
    m = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name, "labels": {}},
         "spec": spec, "status": {"capacity": {"cpu": cpu, "memory": memory, "pods": pods}}}
    if ready is not None:
        m["status"]["conditions"] = [{"type": "MemoryPressure", "status": "False"},
                                     {"type": "Ready", "status": ready}]
    return m


def bound(p, node_name, phase="Running"):
    p["spec"]["nodeName"] = node_name
    p["status"] = {"phase": phase}
    return p


def test_node_infos_from_manifests():
    n1 = node_manifest("node-1", taints=[{"key": "a", "value": "b", "effect": "NoSchedule"}])
    n1["metadata"]["labels"] = {"kubernetes.io/hostname": "node-1"}
    n2 = node_manifest("node-2", cpu="2500m", memory="1G", pods="10", ready="False",
                       unschedulable=True)
    n2["status"]["allocatable"] = {"cpu": "2", "memory": "900M", "pods": "8"}
    n3 = node_manifest("node-3", ready=None)
    pods = [bound(pod("a", cpu="250m", memory="100Mi", owner="u1"), "node-1"),
            bound(pod("b", cpu="250m", owner="u1"), "node-1"),
            bound(pod("done", cpu="4", owner="u1"), "node-1", phase="Succeeded"),
            bound(pod("gone", cpu="4"), "node-9"),
            pod("pending", cpu="1")]
    infos = node_infos([n1, n2, n3], pods)
    assert [i.name for i in infos] == ["node-1", "node-2", "node-3"]
    a, b, c = infos
    assert a.labels == {"kubernetes.io/hostname": "node-1"}
    assert a.taints == [{"key": "a", "value": "b", "effect": "NoSchedule"}]
    assert a.ready and not a.unschedulable
    assert a.capacity == Resources(4000, 8 * GI, 110)
    assert a.allocated == Resources(500, 100 * 2**20, 2)
    assert a.owner_counts == {"u1": 2}
    assert b.capacity == Resources(2000, 900 * 10**6, 8)  # allocatable wins over capacity
    assert not b.ready and b.unschedulable and b.allocated == Resources()
    assert not c.ready  # no Ready condition: not ready


def test_node_infos_bad_quantity_names_node_and_field():
    with pytest.raises(ValidationError) as err:
        node_infos([node_manifest("node-1", cpu="lots")], [])
    assert "Node node-1" in str(err.value)
    assert err.value.field == "status.capacity.cpu"


def test_node_infos_bad_pod_request_names_pod():
    with pytest.raises(ValidationError) as err:
        node_infos([node_manifest("node-1")], [bound(pod("x", cpu="1 core"), "node-1")])
    assert "Pod default/x" in str(err.value)
    assert err.value.field == "spec.containers[0].resources.requests.cpu"


def test_node_infos_bad_taint_effect():
    with pytest.raises(ValidationError) as err:
        node_infos([node_manifest("node-1", taints=[{"key": "a", "effect": "Never"}])], [])
    assert err.value.field == "spec.taints[0].effect"
