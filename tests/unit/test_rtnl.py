"""Netlink message encoding for the pod side of the CNI (pure; the root tests apply it)."""

import socket
import struct

from orchestrator.host import rtnl


def test_messages_are_well_formed_and_sequenced():
    msgs = rtnl.pod_messages("10.244.0.5", "169.254.1.1", lo=1, eth0=7)
    assert [struct.unpack_from("=IHHII", m)[3] for m in msgs] == [1, 2, 3, 4, 5]
    for m in msgs:
        length, kind, flags, _, _ = struct.unpack_from("=IHHII", m)
        assert length == len(m) and length % 4 == 0
        assert flags & rtnl.NLM_F_REQUEST and flags & rtnl.NLM_F_ACK
    kinds = [struct.unpack_from("=H", m, 4)[0] for m in msgs]
    assert kinds == [rtnl.RTM_NEWLINK] * 2 + [rtnl.RTM_NEWADDR] + [rtnl.RTM_NEWROUTE] * 2
    # the address message: AF_INET, /32, on ifindex 7, IFA_LOCAL = the pod IP
    fam, plen, _, scope, idx = struct.unpack_from("=BBBBI", msgs[2], 16)
    assert (fam, plen, scope, idx) == (socket.AF_INET, 32, 0, 7)
    assert socket.inet_aton("10.244.0.5") in msgs[2]
    # the gateway route is link scope with a /32 destination; the default route has a gateway
    r1 = struct.unpack_from("=BBBBBBBBI", msgs[3], 16)
    r2 = struct.unpack_from("=BBBBBBBBI", msgs[4], 16)
    assert r1[1] == 32 and r1[6] == rtnl.RT_SCOPE_LINK
    assert r2[1] == 0 and r2[6] == rtnl.RT_SCOPE_UNIVERSE
    assert struct.pack("=HH", 8, rtnl.RTA_GATEWAY) + socket.inet_aton("169.254.1.1") in msgs[4]


def test_parse_acks_reads_errors_by_sequence():
    ok = struct.pack("=IHHII", 36, rtnl.NLMSG_ERROR, 0, 4, 0) + struct.pack("=i", 0) + b"\0" * 16
    bad = struct.pack("=IHHII", 36, rtnl.NLMSG_ERROR, 0, 5, 0) + struct.pack("=i", -17) + b"\0" * 16
    assert rtnl.parse_acks(ok + bad) == {4: 0, 5: 17}


def test_host_messages_set_mac_and_up_then_route_per_veth():
    import socket
    import struct

    from orchestrator.host import rtnl
    msgs = rtnl.host_messages([(7, "10.244.0.2"), (9, "10.244.0.3")], "ee:ee:ee:ee:ee:ee")
    assert len(msgs) == 4
    seqs = [struct.unpack_from("=IHHII", m)[3] for m in msgs]
    assert seqs == [1, 2, 3, 4]
    kinds = [struct.unpack_from("=IHHII", m)[1] for m in msgs]
    assert kinds == [rtnl.RTM_NEWLINK, rtnl.RTM_NEWROUTE] * 2
    link = msgs[0]
    assert struct.unpack_from("=IHHII", link)[0] == len(link) and len(link) % 4 == 0
    _fam, _type, index, flags, change = struct.unpack_from("=BxHiII", link, 16)
    assert (index, flags & rtnl.IFF_UP, change & rtnl.IFF_UP) == (7, 1, 1)
    length, kind = struct.unpack_from("=HH", link, 32)
    assert kind == rtnl.IFLA_ADDRESS and link[36:36 + length - 4] == b"\xee" * 6
    route = msgs[3]
    assert socket.inet_aton("10.244.0.3") in route
    assert struct.pack("=I", 9) in route[-8:]                       # RTA_OIF of veth 9
    dst_len, scope = route[17], route[22]
    assert dst_len == 32 and scope == rtnl.RT_SCOPE_LINK
