"""orchestrator.control.scheduler properties: no overcommit, determinism, every placement feasible."""

from hypothesis import given, settings
from hypothesis import strategies as st

from orchestrator.control.scheduler import NodeInfo, Resources, pod_view, schedule_many
from orchestrator.control.scheduler import filter_node as filter_node_view

GI = 2**30

nodes_st = st.lists(
    st.builds(lambda i, cpu, mem, pods, unsched, ready, zone: NodeInfo(
        name=f"node-{i}", capacity=Resources(cpu, mem, pods), unschedulable=unsched,
        ready=ready, labels={"zone": zone}),
        st.integers(0, 99), st.sampled_from([0, 500, 1000, 4000]),
        st.sampled_from([0, GI, 4 * GI]), st.integers(0, 5), st.booleans(),
        st.booleans(), st.sampled_from(["a", "b"])),
    min_size=0, max_size=5, unique_by=lambda n: n.name)

pods_st = st.lists(
    st.builds(lambda i, cpu, mem, owner, zone: {
        "metadata": {"name": f"p{i}", "namespace": "default",
                     "ownerReferences": [{"uid": owner, "controller": True}] if owner else []},
        "spec": {"containers": [{"name": "c", "resources": {"requests": {
            k: v for k, v in (("cpu", cpu), ("memory", mem)) if v is not None}}}],
            **({"nodeSelector": {"zone": zone}} if zone else {})}},
        st.integers(0, 10**6), st.sampled_from([None, "100m", "300m", "1"]),
        st.sampled_from([None, "100Mi", "1Gi"]), st.sampled_from([None, "rs-a", "rs-b"]),
        st.sampled_from([None, "a"])),
    max_size=12)


@settings(max_examples=150, deadline=None)
@given(nodes_st, pods_st)
def test_batch_never_overcommits_and_is_deterministic(nodes, pods):
    first = schedule_many(pods, nodes)
    assert first == schedule_many(pods, nodes)
    used = {n.name: Resources() for n in nodes}
    state = {n.name: n for n in nodes}
    for pod, decision in zip(pods, first):
        view = pod_view(pod)
        if decision.node is None:
            assert decision.reasons
            assert set(decision.filtered) == set(state)
            continue
        node = state[decision.node]
        # feasible against the accounting of the pods placed before it
        probe = NodeInfo(name=node.name, labels=node.labels, taints=node.taints,
                         unschedulable=node.unschedulable, ready=node.ready,
                         capacity=node.capacity, allocated=used[node.name])
        assert filter_node_view(view, probe) == []
        assert decision.scores[decision.node] == max(decision.scores.values())
        used[node.name] = used[node.name] + view.requests
    for name, total in used.items():
        cap = state[name].capacity
        assert total.pods <= cap.pods
        assert total.cpu <= cap.cpu
        assert total.memory <= cap.memory


@settings(max_examples=150, deadline=None)
@given(nodes_st, pods_st)
def test_batch_equals_scheduling_one_pod_at_a_time(nodes, pods):
    # schedule_many keeps each equivalence class's filter and node scores between pods; the
    # decisions (node, scores of every plugin, filter reasons) must be exactly those of
    # schedule() on the nodes as each pod finds them.
    import copy

    from orchestrator.control.scheduler import account, schedule
    state = [copy.deepcopy(n) for n in nodes]
    by_name = {n.name: n for n in state}
    expected = []
    for pod in pods:
        decision = schedule(pod, state)
        if decision.node is not None:
            view = pod_view(pod)
            account(by_name[decision.node], view.requests, view.requests_nonzero,
                    view.owner_uid)
        expected.append(decision)
    assert schedule_many(pods, nodes) == expected
