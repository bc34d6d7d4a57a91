"""IPAM persisted in the SQLite store: object shapes, restarts, atomicity, two processes."""

import multiprocessing

import pytest

from orchestrator.control.store import Store
from orchestrator.errors import IPAMExhausted, ValidationError
from orchestrator.ipam import IPAM, IPAMConfig, ensure_default_pool
from orchestrator.ipam.codec import pool_object


@pytest.fixture
def path(tmp_path):
    return str(tmp_path / "state.db")


@pytest.fixture
def ipam(path):
    store = Store(path)
    ensure_default_pool(store)
    yield IPAM(store)
    store.close()


def attrs(ns, pod):
    return {"namespace": ns, "pod": pod}


def test_default_pool_created_once(path):
    store = Store(path)
    pools = ensure_default_pool(store)
    assert [(p.name, p.cidr, p.block_size) for p in pools] == [
        ("default-ipv4-ippool", "10.244.0.0/16", 26)]
    ensure_default_pool(store)
    assert len(store.list("IPPool")) == 1
    assert store.get("IPPool", "default-ipv4-ippool")["spec"]["nodeSelector"] == "all()"


def test_objects_have_calico_shapes(ipam):
    ip = ipam.auto_assign("k8s-pod-network.u1", "node-1", attrs("default", "web-0"))
    assert ip == "10.244.0.0"
    store = ipam.store
    block = store.get("IPAMBlock", "10-244-0-0-26")
    spec = block["spec"]
    assert block["apiVersion"] == "crd.projectcalico.org/v1"
    assert spec["cidr"] == "10.244.0.0/26" and spec["affinity"] == "host:node-1"
    assert spec["allocations"][:2] == [0, None] and len(spec["allocations"]) == 64
    assert spec["unallocated"] == list(range(1, 64))
    assert spec["attributes"] == [{"handle_id": "k8s-pod-network.u1", "secondary": {
        "namespace": "default", "node": "node-1", "pod": "web-0"}}]
    assert spec["sequenceNumber"] == 1 and spec["sequenceNumberForAllocation"] == {"0": 0}
    aff = store.get("BlockAffinity", "node-1-10-244-0-0-26")
    assert aff["spec"] == {"state": "confirmed", "node": "node-1", "cidr": "10.244.0.0/26",
                           "deleted": "false"}
    handle = store.get("IPAMHandle", "k8s-pod-network.u1")
    assert handle["spec"] == {"handleID": "k8s-pod-network.u1",
                              "block": {"10.244.0.0/26": 1}, "deleted": False}


def test_restart_continues_where_it_left_off(path, ipam):
    first = [ipam.auto_assign(f"h{i}", "node-1", attrs("d", f"p{i}")) for i in range(3)]
    again = IPAM(Store(path))  # a fresh process view of the same file
    assert again.auto_assign("h1", "node-1") == first[1]  # crash-restart: same answer
    assert again.auto_assign("h3", "node-1") == "10.244.0.3"
    assert again.ips_for_handle("h2") == [first[2]]
    assert again.blocks_for_node("node-1") == ["10.244.0.0/26"]
    assert again.attributes(first[0]) == {"handle": "h0", "namespace": "d", "pod": "p0",
                                          "node": "node-1"}


def test_release_by_handle(ipam):
    ip = ipam.auto_assign("h", "node-1")
    assert ipam.release_by_handle("h") == [ip]
    assert ipam.release_by_handle("h") == []
    assert ipam.store.get("IPAMHandle", "h") is None
    assert ipam.store.get("BlockAffinity", "node-1-10-244-0-0-26") is not None
    assert ipam.blocks_for_node("node-1") == ["10.244.0.0/26"]
    assert ipam.release_ip("10.244.0.1") is False


def test_release_node_removes_affinities(ipam):
    ipam.auto_assign("h", "node-1")
    ipam.release_by_handle("h")
    ipam.release_node("node-1")
    assert ipam.store.list("IPAMBlock") == [] and ipam.store.list("BlockAffinity") == []


def test_a_failed_write_leaves_nothing_behind(ipam, monkeypatch):
    calls = []
    real_put = ipam.store.put

    def put_then_fail(obj):
        calls.append(obj["kind"])
        if obj["kind"] == "IPAMHandle":
            raise OSError("disk gone")
        return real_put(obj)

    monkeypatch.setattr(ipam.store, "put", put_then_fail)
    with pytest.raises(OSError):
        ipam.auto_assign("h", "node-1")
    assert "IPAMBlock" in calls  # the block was written, then rolled back
    monkeypatch.undo()
    assert ipam.store.list("IPAMBlock") == [] and ipam.store.list("BlockAffinity") == []
    assert ipam.auto_assign("h", "node-1") == "10.244.0.0"


def test_pool_node_selector_and_pool_names(ipam):
    store = ipam.store
    store.create(pool_object("zone-b", "10.50.0.0/24", 26, node_selector="zone == 'b'"))
    store.create({"apiVersion": "v1", "kind": "Node",
                  "metadata": {"name": "node-b", "labels": {"zone": "b"}}})
    # Pools are tried in name order: default-ipv4-ippool before zone-b.
    assert ipam.auto_assign("h1", "node-b") == "10.244.0.0"
    assert ipam.auto_assign("h2", "node-b", pool_names=["zone-b"]) == "10.50.0.0"
    assert ipam.auto_assign("h3", "node-a", node_labels={"zone": "a"}) == "10.244.0.64"
    with pytest.raises(IPAMExhausted, match="no configured Calico pools for node node-a"):
        ipam.auto_assign("h4", "node-a", pool_names=["zone-b"])
    with pytest.raises(ValidationError, match="'nope' does not exist"):
        ipam.auto_assign("h5", "node-a", pool_names=["nope"])


def test_disabled_pool_and_bad_selector(ipam):
    store = ipam.store
    pool = store.get("IPPool", "default-ipv4-ippool")
    pool["spec"]["disabled"] = True
    store.update(pool)
    with pytest.raises(IPAMExhausted, match="no configured Calico pools"):
        ipam.auto_assign("h", "node-1")
    store.create(pool_object("other", "10.60.0.0/24", 26))
    bad = store.get("IPPool", "other")
    bad["spec"]["nodeSelector"] = "zone in {'a'}"
    store.update(bad)
    with pytest.raises(ValidationError) as err:
        ipam.auto_assign("h", "node-1")
    assert err.value.obj == "IPPool other" and err.value.field == "spec.nodeSelector"


def test_strict_affinity_config_is_persisted(path, ipam):
    ipam.store.put(pool_object("default-ipv4-ippool", "10.0.0.0/29", 30))
    ipam.set_config(IPAMConfig(strict_affinity=True))
    ipam.auto_assign("a", "node-1")
    ipam.auto_assign("b", "node-2")
    with pytest.raises(IPAMExhausted, match="strict affinity enabled"):
        IPAM(Store(path)).auto_assign("c", "node-3")
    assert "| StrictAffinity     | true  |" in ipam.show(show_config=True)


def test_assign_ip_and_show_check(ipam):
    assert ipam.assign_ip("10.244.3.3", "h", "node-1", attrs("ns", "p")) == "10.244.3.3"
    assert "IP 10.244.3.3 is in use" in ipam.show(ip="10.244.3.3")
    text, problems = ipam.check({"10.244.3.3": "ns/p"})
    assert problems == 0, text


def test_corrupt_block_is_refused_for_allocation_but_reported_by_check(ipam):
    ipam.auto_assign("h", "node-1")
    block = ipam.store.get("IPAMBlock", "10-244-0-0-26")
    block["spec"]["unallocated"].append(5)
    ipam.store.put(block)
    with pytest.raises(ValidationError, match="ordinal 5 appears more than once"):
        ipam.auto_assign("h2", "node-1")
    text, problems = ipam.check({})
    assert "IPAMBlock 10.244.0.0/26 is invalid: ordinal 5 appears more than once" in text
    assert "Found 1 invalid IPAMBlocks." in text
    # The handle now points at no readable allocation: also a problem.
    assert problems == 2


def _worker(path, node, count, queue):
    ipam = IPAM(Store(path))
    ips = [ipam.auto_assign(f"{node}-{i}", node, {"pod": f"{node}-{i}"}) for i in range(count)]
    queue.put(ips)


def test_two_processes_never_get_the_same_address(path):
    store = Store(path)
    # A small pool (four /28 blocks, 64 addresses) so the two processes race to claim blocks
    # and, depending on who wins, node-a has to borrow from node-b's blocks.
    store.create(pool_object("default-ipv4-ippool", "10.9.0.0/26", 28))
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    procs = [ctx.Process(target=_worker, args=(path, node, n, queue))
             for node, n in [("node-a", 40), ("node-b", 20)]]
    for p in procs:
        p.start()
    results = [queue.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    ips = [ip for r in results for ip in r]
    assert len(ips) == 60 and len(set(ips)) == 60
    ipam = IPAM(Store(path))
    text, problems = ipam.check({ip: "ns/p" for ip in ips})
    assert problems == 0, text
    assert "IPAM blocks record 60 allocations." in text


def test_ipv6_pool_does_not_disturb_ipv4_assignment(ipam):
    ipam.store.create(pool_object("default-ipv6-ippool", "fd00:10:244::/64", 122))
    assert ipam.auto_assign("h4", "node-1") == "10.244.0.0"
    assert ipam.auto_assign("h6", "node-1", version=6) == "fd00:10:244::"


def test_dual_stack_handle_gets_one_address_per_family(ipam):
    ipam.store.create(pool_object("default-ipv6-ippool", "fd00:10:244::/64", 122))
    v4 = ipam.auto_assign("k8s-pod-network.ds", "node-1")
    v6 = ipam.auto_assign("k8s-pod-network.ds", "node-1", version=6)
    assert (v4, v6) == ("10.244.0.0", "fd00:10:244::")
    assert ipam.auto_assign("k8s-pod-network.ds", "node-1", version=6) == v6
    assert ipam.ips_for_handle("k8s-pod-network.ds") == [v4, v6]
    assert ipam.release_by_handle("k8s-pod-network.ds") == [v4, v6]


def test_loads_decode_only_what_changed(ipam, monkeypatch):
    from orchestrator.ipam import codec
    from orchestrator.ipam import store as ipam_store
    ipam.auto_assign_many("n1", [(f"h{i}", attrs("a", f"p{i}")) for i in range(10)])
    ipam.auto_assign_many("n2", [("h-n2", attrs("a", "q"))])
    assert len(ipam.blocks_for_node("n1")) == 1      # fills the cache, outside a transaction
    decoded = []
    real_block, real_handle = codec.block_from_object, codec.handle_from_object
    monkeypatch.setattr(codec, "block_from_object",
                        lambda o: decoded.append(o["metadata"]["name"]) or real_block(o))
    monkeypatch.setattr(ipam_store.codec, "handle_from_object",
                        lambda o: decoded.append(o["metadata"]["name"]) or real_handle(o))
    ipam.state()
    assert decoded == []
    ipam.auto_assign_many("n1", [("h-new", attrs("a", "new"))])
    decoded.clear()
    state = ipam.state()
    assert sorted(decoded) == sorted([codec.block_name(ipam.blocks_for_node("n1")[0]),
                                      "h-new"])
    assert len(state.handles) == 12 and "h-new" in state.handles


def test_a_rolled_back_write_never_reaches_the_cache(path, ipam):
    # A rollback hands its resourceVersions back; had this IPAM kept what it read inside the
    # transaction, another writer's block of the same version would later be taken for it.
    ipam.auto_assign_many("n1", [("h1", attrs("a", "p1"))])
    ipam.state()
    with pytest.raises(RuntimeError):
        with ipam.store.transaction():
            ipam.auto_assign_many("n1", [("h-gone", attrs("a", "gone"))])
            assert "h-gone" in ipam.state().handles    # its own write, seen inside
            raise RuntimeError("roll back")
    other = IPAM(Store(path))
    other.auto_assign_many("n1", [("h2", attrs("a", "p2"))])   # reuses those versions
    other.store.close()
    state = ipam.state()
    assert set(state.handles) == {"h1", "h2"}
    (blk,) = state.blocks.values()
    assert sorted(a.handle for a in blk.allocations.values()) == ["h1", "h2"]


def test_a_write_from_another_store_is_seen(path, ipam):
    ipam.auto_assign_many("n1", [("h1", attrs("a", "p1"))])
    ipam.state()
    other = IPAM(Store(path))
    other.auto_assign_many("n1", [("h2", attrs("a", "p2"))])
    other.store.close()
    assert set(ipam.state().handles) == {"h1", "h2"}
    assert ipam.ips_for_handle("h2") != ipam.ips_for_handle("h1")
