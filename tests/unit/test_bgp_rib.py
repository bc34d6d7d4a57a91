"""RIB folding, best path, kernel routes (incl. borrowed /32 vs blackhole), reflection."""

from __future__ import annotations

from bgp import codec, rib
from bgp.codec import EOR, Path, PeerState, RouteUpdate
from bgp.peering import Neighbor
from bgp.rib import BLACKHOLE, RIB, Route, desired_routes, render_batch

A, B, C, ME = "172.18.0.3", "172.18.0.4", "172.18.0.5", "172.18.0.2"


def fold(events, **kw):
    r = RIB(ME, kw.pop("cluster_id", None))
    for ev in events:
        r.apply(ev, **kw)
    return r


def up_with(peer, *paths):
    return [PeerState(peer, "up"), RouteUpdate(peer, announced=tuple(paths))]


def test_remote_blocks_via_peer_and_own_blackholes():
    r = fold(up_with(A, Path("10.244.1.0/26", A)) + up_with(B, Path("10.244.2.0/26", B)))
    assert desired_routes(r, ["10.244.0.0/26"], [], ME) == [
        Route("10.244.0.0/26", BLACKHOLE), Route("10.244.1.0/26", "unicast", A),
        Route("10.244.2.0/26", "unicast", B)]


def test_borrowed_ip_from_our_block_routes_to_borrower_not_blackhole():
    # Calico #3246: B borrowed 10.244.0.9 from our block; we must route it to B.
    r = fold(up_with(B, Path("10.244.0.9/32", B), Path("10.244.2.0/26", B)))
    routes = desired_routes(r, ["10.244.0.0/26"], [], ME)
    assert Route("10.244.0.9/32", "unicast", B) in routes
    assert Route("10.244.0.0/26", BLACKHOLE) in routes


def test_own_borrowed_ip_and_own_block_never_routed_away():
    r = fold(up_with(A, Path("10.244.1.7/32", A), Path("10.244.1.0/26", A),
                     Path("10.244.0.0/26", A)))  # a stale claim of our block
    routes = desired_routes(r, ["10.244.0.0/26"], ["10.244.1.7"], ME)
    assert routes == [Route("10.244.0.0/26", BLACKHOLE), Route("10.244.1.0/26", "unicast", A)]


def test_route_pointing_at_ourselves_is_ignored():
    r = fold(up_with(A, Path("10.244.5.0/26", ME, ME, ("224.0.0.1",))))
    assert desired_routes(r, [], [], ME) == []  # our own route reflected back: dropped
    r = fold(up_with(A, Path("10.244.5.0/26", ME)))
    assert desired_routes(r, [], [], ME) == []


def test_withdraw_and_peer_down():
    events = up_with(A, Path("10.244.1.0/26", A), Path("10.244.1.64/26", A))
    events.append(RouteUpdate(A, withdrawn=("10.244.1.0/26",)))
    assert [x.prefix for x in desired_routes(fold(events), [], [], ME)] == ["10.244.1.64/26"]
    events.append(PeerState(A, "down", "closing connection"))
    assert desired_routes(fold(events), [], [], ME) == []


def test_graceful_restart_keeps_stale_until_eor():
    events = up_with(A, Path("10.244.1.0/26", A), Path("10.244.1.64/26", A))
    events.append(PeerState(A, "down"))
    r = fold(events, retain_stale=True)
    assert len(desired_routes(r, [], [], ME)) == 2  # forwarding continues
    r.apply(PeerState(A, "up"))
    r.apply(RouteUpdate(A, announced=(Path("10.244.1.64/26", A),)))
    r.apply(EOR(A))
    assert [x.prefix for x in desired_routes(r, [], [], ME)] == ["10.244.1.64/26"]


def test_expire_stale_without_return():
    r = fold(up_with(A, Path("10.244.1.0/26", A)) + [PeerState(A, "down")], retain_stale=True)
    r.expire_stale(A)
    assert desired_routes(r, [], [], ME) == []


def test_best_path_preference_order():
    p = "10.244.9.0/26"
    # shorter cluster list wins over lower address
    r = fold(up_with(A, Path(p, C, C, ("1.1.1.1", "2.2.2.2")))
             + up_with(B, Path(p, C, C, ("1.1.1.1",))))
    assert r.best()[p][0] == B
    # higher local preference wins over everything
    r = fold(up_with(A, Path(p, C, C, ("1.1.1.1", "2.2.2.2"), 200))
             + up_with(B, Path(p, C, C, ("1.1.1.1",))))
    assert r.best()[p][0] == A
    # equal: lowest originator, then lowest peer address; order of arrival irrelevant
    one = fold(up_with(B, Path(p, B)) + up_with(A, Path(p, A)))
    two = fold(up_with(A, Path(p, A)) + up_with(B, Path(p, B)))
    assert one.best() == two.best() and one.best()[p][0] == A


def test_cluster_loop_dropped_on_reflector():
    r = fold(up_with(A, Path("10.244.1.0/26", A, A, ("224.0.0.1",))), cluster_id="224.0.0.1")
    assert r.best() == {}


def test_advertised_blocks_and_borrowed():
    assert rib.advertised(["10.244.0.64/26", "10.244.0.0/26", "10.244.7.7/32"],
                          ["10.244.3.4"]) == ["10.244.0.0/26", "10.244.0.64/26",
                                              "10.244.3.4/32"]


def test_reflection_rules():
    clients = [Neighbor(A, 64512, "node specific", rr_client=True, cluster_id="224.0.0.1"),
               Neighbor(B, 64512, "node specific", rr_client=True, cluster_id="224.0.0.1")]
    other_rr = Neighbor(C, 64512, "node specific")
    r = fold(up_with(A, Path("10.244.1.0/26", A)) + up_with(C, Path("10.244.5.0/26", C)),
             cluster_id="224.0.0.1")
    out = rib.reflected(r, clients + [other_rr])
    assert out[B] == {"10.244.1.0/26": Path("10.244.1.0/26", A, A, ("224.0.0.1",)),
                      "10.244.5.0/26": Path("10.244.5.0/26", C, C, ("224.0.0.1",))}
    assert out[C] == {"10.244.1.0/26": Path("10.244.1.0/26", A, A, ("224.0.0.1",))}
    assert "10.244.1.0/26" not in out[A]  # never back to where it came from
    assert rib.reflected(fold(up_with(A, Path("10.244.1.0/26", A))), clients) == {}
    cmds = rib.reflection_commands({}, out)
    assert cmds[0] == codec.announce("10.244.5.0/26", C, neighbors=[A], originator_id=C,
                                     cluster_list=["224.0.0.1"], local_preference=100)
    later = {k: dict(v) for k, v in out.items()}
    del later[B]["10.244.5.0/26"]
    assert rib.reflection_commands(out, later) == [
        codec.withdraw("10.244.5.0/26", neighbors=[B])]


def test_render_batch_diff_and_idempotence():
    cur = rib.parse_current([
        {"type": "blackhole", "dst": "10.244.0.0/26", "protocol": "bird"},
        {"dst": "10.244.1.0/26", "gateway": A, "dev": "eth0", "protocol": "bird"},
        {"dst": "10.244.2.0/26", "gateway": B, "dev": "eth0", "protocol": "bird"},
        {"type": "blackhole", "dst": "10.244.4.0/26", "protocol": "bird"}])
    want = [Route("10.244.0.0/26", BLACKHOLE), Route("10.244.0.9/32", "unicast", B),
            Route("10.244.1.0/26", "unicast", C), Route("10.244.2.0/26", "unicast", B)]
    assert render_batch(cur, want) == (
        "route del blackhole 10.244.4.0/26 proto 12\n"
        "route replace 10.244.0.9/32 via 172.18.0.4 proto 12\n"
        "route replace 10.244.1.0/26 via 172.18.0.5 proto 12\n")
    assert render_batch(want, want) == ""
    assert render_batch([Route("10.244.3.0/26", BLACKHOLE)],
                        [Route("10.244.3.0/26", "unicast", A)]) == \
        "route replace 10.244.3.0/26 via 172.18.0.3 proto 12\n"


def test_restart_expected_from_real_down_reasons():
    from pathlib import Path as FsPath
    lines = (FsPath(__file__).resolve().parents[1] / "fixtures" / "bgp"
             / "faults_receiver.jsonl").read_text().splitlines()
    downs = [e for line in lines for e in codec.parse(line)
             if isinstance(e, PeerState) and e.state == "down"]
    killed = [e for e in downs if e.peer == "10.213.7.1"]
    cut = [e for e in downs if e.peer == "10.213.7.3"]
    assert killed and all(rib.restart_expected(e) for e in killed)      # SIGKILL: keep stale
    assert cut and not any(rib.restart_expected(e) for e in cut)        # hold timer: drop
    assert not rib.restart_expected(PeerState(A, "up"))
