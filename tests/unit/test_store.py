"""State store: resourceVersions, optimistic concurrency, events, transactions, persistence."""

import multiprocessing

import pytest

from orchestrator.control.store import Store
from orchestrator.errors import Conflict, NotFound


def pod(name, ns="default", **spec):
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": ns},
            "spec": spec or {"containers": [{"name": "c", "image": "agnhost"}]}}


@pytest.fixture
def store(tmp_path):
    s = Store(str(tmp_path / "state.db"), clock=lambda: "2026-01-01T00:00:00Z")
    yield s
    s.close()


def test_create_sets_metadata_and_rv(store):
    obj = store.create(pod("a"))
    assert obj["metadata"]["resourceVersion"] == "1"
    assert obj["metadata"]["uid"]
    assert obj["metadata"]["creationTimestamp"] == "2026-01-01T00:00:00Z"
    assert store.get("Pod", "a", "default") == obj
    assert store.get("Pod", "a", "other") is None
    with pytest.raises(Conflict, match="already exists"):
        store.create(pod("a"))


def test_update_cas_and_generation(store):
    obj = store.create(pod("a"))
    stale = dict(obj)
    obj["spec"] = {"containers": [{"name": "c", "image": "nginx"}]}
    new = store.update(obj)
    assert new["metadata"]["generation"] == 2
    assert int(new["metadata"]["resourceVersion"]) > int(stale["metadata"]["resourceVersion"])
    with pytest.raises(Conflict, match="was modified"):
        store.update(stale)
    with pytest.raises(NotFound):
        store.update(pod("missing"))


def test_unchanged_update_does_not_bump(store):
    obj = store.create(pod("a"))
    again = store.update(dict(obj))
    assert again["metadata"]["resourceVersion"] == obj["metadata"]["resourceVersion"]


def test_events_and_delete(store):
    store.create(pod("a"))
    store.put(pod("a", containers=[{"name": "c", "image": "x"}]))
    store.delete("Pod", "a", "default")
    assert store.delete("Pod", "a", "default") is None
    evs = store.events(0)
    assert [e.type for e in evs] == ["ADDED", "MODIFIED", "DELETED"]
    assert [e.rv for e in evs] == [1, 2, 3]
    assert store.events(2)[0].type == "DELETED"


def test_transaction_rolls_back_everything(store):
    with pytest.raises(RuntimeError):
        with store.transaction():
            store.create(pod("a"))
            store.create(pod("b"))
            raise RuntimeError("boom")
    assert store.list("Pod") == []
    assert store.current_rv() == 0


def test_subscribers_see_commits_only(store):
    seen = []
    store.subscribe(lambda evs: seen.extend(e.name for e in evs))
    with store.transaction():
        store.create(pod("a"))
        assert seen == []
    assert seen == ["a"]


def test_list_sorted_and_namespaced(store):
    for ns, n in [("b", "z"), ("a", "y"), ("a", "x")]:
        store.create(pod(n, ns))
    assert [o["metadata"]["name"] for o in store.list("Pod")] == ["x", "y", "z"]
    assert [o["metadata"]["name"] for o in store.list("Pod", "b")] == ["z"]


def _writer(path, prefix, n):
    s = Store(path)
    for i in range(n):
        s.create(pod(f"{prefix}-{i}"))


def test_two_processes_share_one_file(tmp_path):
    path = str(tmp_path / "state.db")
    Store(path).close()
    procs = [multiprocessing.Process(target=_writer, args=(path, p, 30)) for p in "ab"]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    s = Store(path)
    assert len(s.list("Pod")) == 60
    assert s.current_rv() == 60
    assert sorted(e.rv for e in s.events(0)) == list(range(1, 61))


def test_list_since_returns_only_what_changed(store):
    a = store.create(pod("a"))
    store.create(pod("b", ns="other"))
    rows = store.list_since("Pod", 0)
    assert [(ns, n, o["metadata"]["name"]) for ns, n, _rv, o in rows] == [
        ("default", "a", "a"), ("other", "b", "b")]
    top = max(rv for _ns, _n, rv, _o in rows)
    assert [o for *_, o in store.list_since("Pod", top)] == [None, None]
    a["spec"]["x"] = 1
    store.update(a)
    store.delete("Pod", "b", "other")
    rows = store.list_since("Pod", top)
    assert [(n, o is not None) for _ns, n, _rv, o in rows] == [("a", True)]
    assert rows[0][3]["spec"]["x"] == 1


def test_has_and_list_where_filter_without_decoding_everything(store):
    assert not store.has("Pod")
    store.create(pod("bound", nodeName="node-1"))
    store.create(pod("pending"))
    owned = pod("owned", nodeName="node-2")
    owned["metadata"]["ownerReferences"] = [{"kind": "ReplicaSet", "name": "rs", "uid": "u1",
                                            "controller": True}]
    store.create(owned)
    assert store.has("Pod") and not store.has("ReplicaSet")
    names = lambda objs: [o["metadata"]["name"] for o in objs]  # noqa: E731
    assert names(store.list_where("Pod", "$.spec.nodeName", present=False)) == ["pending"]
    assert names(store.list_where("Pod", "$.spec.nodeName", present=True)) == ["bound", "owned"]
    assert names(store.list_where("Pod", "$.metadata.ownerReferences", present=True)) == ["owned"]
    # An annotation that merely mentions the key is not the key.
    tricky = pod("tricky")
    tricky["metadata"]["annotations"] = {"note": '"nodeName": "node-1"'}
    store.create(tricky)
    assert names(store.list_where("Pod", "$.spec.nodeName", present=False)) == ["pending",
                                                                                "tricky"]


def test_list_where_counts_empty_and_null_values_as_lacking(store):
    store.create(pod("empty", nodeName=""))
    store.create(pod("null", nodeName=None))
    store.create(pod("bound", nodeName="n1"))
    got = [o["metadata"]["name"] for o in store.list_where("Pod", "$.spec.nodeName",
                                                            present=False)]
    assert got == ["empty", "null"]
    assert [o["metadata"]["name"] for o in store.list_where(
        "Pod", "$.spec.nodeName", present=True)] == ["bound"]


def test_shared_list_decodes_only_what_changed(store, monkeypatch):
    for n in ("a", "b", "c"):
        store.create(pod(n))
    store.create(pod("x", ns="other"))
    first = store.list("Pod", shared=True)
    assert [p["metadata"]["name"] for p in first] == ["a", "b", "c", "x"]
    assert first == store.list("Pod")
    store.update_status("Pod", "b", "default", {"phase": "Running"})
    store.delete("Pod", "c", "default")
    again = store.list("Pod", shared=True)
    assert [p["metadata"]["name"] for p in again] == ["a", "b", "x"]
    assert again[0] is first[0] and again[2] is first[3]      # unchanged: the same objects
    assert again[1] is not first[1] and again[1]["status"] == {"phase": "Running"}
    assert again == store.list("Pod")
    # A namespace's list shares the same cache; a re-created object is decoded afresh.
    assert store.list("Pod", "other", shared=True)[0] is first[3]
    store.create(pod("c"))
    assert store.list("Pod", "default", shared=True)[2]["metadata"]["name"] == "c"


def test_list_since_shared_goes_through_the_shared_decode_cache(store):
    store.create(pod("a"))
    store.create(pod("b"))
    [a, b] = store.list("Pod", shared=True)
    rows = store.list_since("Pod", 0, shared=True)
    assert [r[3] for r in rows] == [a, b] and rows[0][3] is a and rows[1][3] is b
    top = max(r[2] for r in rows)
    store.update_status("Pod", "b", "default", {"phase": "Running"})
    rows = store.list_since("Pod", top, shared=True)
    assert rows[0][3] is None and rows[1][3]["status"] == {"phase": "Running"}
    assert store.list("Pod", shared=True)[1] is rows[1][3]     # decoded once for both
    with store.transaction():        # inside one: copies, as list(shared=True) gives
        inside = store.list_since("Pod", 0, shared=True)
        assert inside[1][3] == rows[1][3] and inside[1][3] is not rows[1][3]


def test_shared_list_inside_a_transaction_gives_copies_and_own_writes(store):
    store.create(pod("a"))
    shared = store.list("Pod", shared=True)[0]
    with store.transaction():
        store.update_status("Pod", "a", "default", {"phase": "Running"})
        inside = store.list("Pod", shared=True)[0]
        assert inside is not shared and inside["status"] == {"phase": "Running"}
        # ...and what it read there is not cached: the transaction may still roll back.
    assert store.list("Pod", shared=True)[0]["status"] == {"phase": "Running"}


def test_shared_objects_modified_in_place_are_caught_when_checking(tmp_path, monkeypatch):
    monkeypatch.setenv("CALINET_CHECK_SHARED", "1")
    s = Store(str(tmp_path / "check.db"))
    try:
        s.create(pod("a"))
        s.list("Pod", shared=True)[0]["spec"]["nodeName"] = "node-1"
        with pytest.raises(AssertionError, match="Pod default/a: an object from "
                                                 r"store.list\(shared=True\) was modified"):
            s.list("Pod", shared=True)
    finally:
        s.close()


def test_update_with_nothing_changed_writes_nothing(store):
    obj = store.create(pod("a"))
    same = store.update({**obj, "metadata": {**obj["metadata"], "resourceVersion": None}})
    assert same["metadata"]["resourceVersion"] == obj["metadata"]["resourceVersion"]
    assert store.patch("Pod", "a", "default", lambda o: None)["metadata"]["resourceVersion"] \
        == obj["metadata"]["resourceVersion"]
    changed = store.patch("Pod", "a", "default", lambda o: o["metadata"].update(labels={"x": "1"}))
    assert int(changed["metadata"]["resourceVersion"]) > int(obj["metadata"]["resourceVersion"])
    with pytest.raises(Conflict, match="was modified"):
        store.patch("Pod", "a", "default",
                    lambda o: o["metadata"].update(resourceVersion="1", labels={}))
