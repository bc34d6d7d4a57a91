"""kubeproxy: chain names, the nat layout of kube-proxy's iptables proxier, the diff renderer."""

from kubeproxy import (
    Endpoint,
    NatState,
    ServicePort,
    compile_nat,
    endpoint_chain,
    external_chain,
    parse_nat_save,
    render_full,
    render_nat,
    service_chain,
    service_ports,
)
from kubeproxy.render import state_of


def test_chain_names_match_real_clusters():
    # Chain names every kubeadm cluster shows for its built-in Services.
    assert service_chain("default/kubernetes:https", "tcp") == "KUBE-SVC-NPX46M4PTMTKRN6Y"
    assert service_chain("kube-system/kube-dns:dns", "UDP") == "KUBE-SVC-TCOU7JCQXEZGVUNU"
    assert service_chain("kube-system/kube-dns:dns-tcp", "TCP") == "KUBE-SVC-ERIFXISQEP7F7OF4"
    assert external_chain("default/kubernetes:https", "tcp") == "KUBE-EXT-NPX46M4PTMTKRN6Y"
    sep = endpoint_chain("default/web:http", "tcp", "10.244.1.2:8080")
    assert sep.startswith("KUBE-SEP-") and len(sep) == len("KUBE-SEP-") + 16
    assert sep != endpoint_chain("default/web:http", "tcp", "10.244.1.3:8080")


EPS = (Endpoint("10.244.1.2", 8080), Endpoint("10.244.1.3", 8080), Endpoint("10.244.2.2", 8080))


def _web(**kw):
    args = dict(namespace="default", name="web", port_name="http", protocol="TCP",
                cluster_ip="10.96.0.50", port=80, endpoints=EPS)
    args.update(kw)
    return ServicePort(**args)


def test_cluster_ip_service_golden():
    t = compile_nat([_web()], "10.244.0.0/16")
    svc = service_chain("default/web:http", "tcp")
    s1, s2, s3 = (endpoint_chain("default/web:http", "tcp", str(e)) for e in EPS)
    assert t.chains["KUBE-SERVICES"] == [
        f'-m comment --comment "default/web:http cluster IP" -m tcp -p tcp '
        f"-d 10.96.0.50/32 --dport 80 -j {svc}",
        '-m comment --comment "kubernetes service nodeports; NOTE: this must be the last '
        'rule in this chain" -m addrtype --dst-type LOCAL -j KUBE-NODEPORTS',
    ]
    assert t.chains[svc] == [
        '-m comment --comment "default/web:http cluster IP" -m tcp -p tcp -d 10.96.0.50/32 '
        "--dport 80 ! -s 10.244.0.0/16 -j KUBE-MARK-MASQ",
        '-m comment --comment "default/web:http -> 10.244.1.2:8080" -m statistic --mode '
        f"random --probability 0.3333333333 -j {s1}",
        '-m comment --comment "default/web:http -> 10.244.1.3:8080" -m statistic --mode '
        f"random --probability 0.5000000000 -j {s2}",
        f'-m comment --comment "default/web:http -> 10.244.2.2:8080" -j {s3}',
    ]
    assert t.chains[s1] == [
        "-m comment --comment default/web:http -s 10.244.1.2/32 -j KUBE-MARK-MASQ",
        "-m comment --comment default/web:http -m tcp -p tcp -j DNAT "
        "--to-destination 10.244.1.2:8080",
    ]
    assert t.chains["KUBE-MARK-MASQ"] == ["-j MARK --or-mark 0x4000"]
    assert t.chains["KUBE-POSTROUTING"] == [
        "-m mark ! --mark 0x4000/0x4000 -j RETURN",
        "-j MARK --xor-mark 0x4000",
        '-m comment --comment "kubernetes service traffic requiring SNAT" '
        "-j MASQUERADE --random-fully",
    ]
    assert t.chains["KUBE-NODEPORTS"] == []
    assert dict(t.hooks) == {
        "PREROUTING": '-m comment --comment "kubernetes service portals" -j KUBE-SERVICES',
        "OUTPUT": '-m comment --comment "kubernetes service portals" -j KUBE-SERVICES',
        "POSTROUTING": '-m comment --comment "kubernetes postrouting rules" '
                       "-j KUBE-POSTROUTING"}


def test_one_endpoint_is_unconditional_and_no_cidr_no_masq_rule():
    t = compile_nat([_web(endpoints=EPS[:1])])
    svc = service_chain("default/web:http", "tcp")
    sep = endpoint_chain("default/web:http", "tcp", "10.244.1.2:8080")
    assert t.chains[svc] == [f'-m comment --comment "default/web:http -> 10.244.1.2:8080" '
                             f"-j {sep}"]


def test_no_endpoints_no_chains():
    t = compile_nat([_web(endpoints=())])
    assert not any(c.startswith(("KUBE-SVC-", "KUBE-SEP-")) for c in t.chains)
    assert len(t.chains["KUBE-SERVICES"]) == 1          # only the nodeports jump


def test_node_port_and_udp_unnamed_port():
    t = compile_nat([_web(node_port=30080, endpoints=EPS[:1]),
                     ServicePort("ns", "dns", "", "UDP", "10.96.0.10", 53,
                                 endpoints=(Endpoint("10.244.3.3", 5353),))])
    ext, svc = external_chain("default/web:http", "tcp"), service_chain("default/web:http", "tcp")
    assert t.chains["KUBE-NODEPORTS"] == [
        f"-m comment --comment default/web:http -m tcp -p tcp --dport 30080 -j {ext}"]
    assert t.chains[ext] == [
        '-m comment --comment "masquerade traffic for default/web:http external '
        'destinations" -j KUBE-MARK-MASQ', f"-j {svc}"]
    udp = service_chain("ns/dns", "udp")
    assert (f'-m comment --comment "ns/dns cluster IP" -m udp -p udp -d 10.96.0.10/32 '
            f"--dport 53 -j {udp}") in t.chains["KUBE-SERVICES"]
    sep = endpoint_chain("ns/dns", "udp", "10.244.3.3:5353")
    assert t.chains[sep][-1] == ("-m comment --comment ns/dns -m udp -p udp -j DNAT "
                                 "--to-destination 10.244.3.3:5353")


def test_session_affinity_client_ip():
    t = compile_nat([_web(endpoints=EPS[:2], affinity_seconds=10800)])
    svc = service_chain("default/web:http", "tcp")
    s1, s2 = (endpoint_chain("default/web:http", "tcp", str(e)) for e in EPS[:2])
    assert t.chains[svc] == [
        f'-m comment --comment "default/web:http -> 10.244.1.2:8080" -m recent --name {s1} '
        f"--rcheck --seconds 10800 --reap -j {s1}",
        f'-m comment --comment "default/web:http -> 10.244.1.3:8080" -m recent --name {s2} '
        f"--rcheck --seconds 10800 --reap -j {s2}",
        '-m comment --comment "default/web:http -> 10.244.1.2:8080" -m statistic --mode '
        f"random --probability 0.5000000000 -j {s1}",
        f'-m comment --comment "default/web:http -> 10.244.1.3:8080" -j {s2}',
    ]
    assert t.chains[s1][1] == (f"-m comment --comment default/web:http -m recent --name {s1} "
                               "--set -m tcp -p tcp -j DNAT --to-destination 10.244.1.2:8080")


def test_render_full_then_nothing_then_only_changes():
    t = compile_nat([_web()])
    text = render_full(t)
    lines = text.splitlines()
    assert lines[0] == "*nat" and lines[-1] == "COMMIT"
    assert ":KUBE-SERVICES - [0:0]" in lines
    assert ('-I PREROUTING 1 -m comment --comment "kubernetes service portals" '
            "-j KUBE-SERVICES") in lines
    assert not any(ln.startswith(("-A PREROUTING", "-A OUTPUT", ":PREROUTING")) for ln in lines)
    assert render_nat(t, state_of(t)) == ""
    # One endpoint fewer: KUBE-SERVICES and the masq chains are untouched, the SVC chain is
    # rewritten, the gone endpoint's chain is flushed and deleted.
    t2 = compile_nat([_web(endpoints=EPS[:2])])
    diff = render_nat(t2, state_of(t)).splitlines()
    svc = service_chain("default/web:http", "tcp")
    gone = endpoint_chain("default/web:http", "tcp", str(EPS[2]))
    assert diff == ["*nat", f":{svc} - [0:0]", f":{gone} - [0:0]",
                    *[f"-A {svc} {r}" for r in t2.chains[svc]], f"-X {gone}", "COMMIT"]


def test_parse_save_knows_names_and_hooks_only():
    save = """*filter
:KUBE-FORWARD - [0:0]
COMMIT
*nat
:PREROUTING ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:KUBE-SERVICES - [0:0]
:KUBE-SVC-OLD - [0:0]
:DOCKER - [0:0]
-A PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES
-A OUTPUT -j DOCKER
-A KUBE-SERVICES -j KUBE-SVC-OLD
COMMIT
"""
    st = parse_nat_save(save)
    assert st.chains == {"KUBE-SERVICES": None, "KUBE-SVC-OLD": None}
    assert st.hooks == {("PREROUTING", "KUBE-SERVICES")}
    t = compile_nat([])
    text = render_nat(t, st)
    # Unknown contents are rewritten; the stale chain goes; DOCKER and the filter table stay.
    assert ":KUBE-SERVICES - [0:0]" in text and "-X KUBE-SVC-OLD" in text
    assert "DOCKER" not in text and "KUBE-FORWARD" not in text
    assert "-I PREROUTING" not in text and "-I OUTPUT 1" in text
    assert render_nat(t, NatState()) == render_full(t)


def _svc(name, ports, cip="10.96.0.50", **spec):
    return {"metadata": {"namespace": "default", "name": name},
            "spec": {"clusterIP": cip, "ports": ports, **spec}}


def _slice(svc, ports, eps):
    return {"metadata": {"namespace": "default", "name": f"{svc}-abc",
                         "labels": {"kubernetes.io/service-name": svc}},
            "addressType": "IPv4", "ports": ports,
            "endpoints": [{"addresses": [ip], "conditions": {"ready": r}} for ip, r in eps]}


def test_service_ports_from_objects():
    services = [
        _svc("web", [{"name": "http", "port": 80, "protocol": "TCP", "targetPort": "web"},
                     {"name": "dns", "port": 53, "protocol": "UDP", "targetPort": 53}],
             type="NodePort", sessionAffinity="ClientIP",
             sessionAffinityConfig={"clientIP": {"timeoutSeconds": 60}}),
        _svc("headless", [{"port": 80, "protocol": "TCP"}], cip="None"),
    ]
    services[0]["spec"]["ports"][0]["nodePort"] = 30080
    slices = [_slice("web", [{"name": "http", "port": 8080, "protocol": "TCP"}],
                     [("10.244.1.3", True), ("10.244.1.2", True), ("10.244.1.9", False)]),
              _slice("headless", [{"name": "", "port": 80, "protocol": "TCP"}],
                     [("10.244.1.5", True)])]
    got = service_ports(services, slices)
    assert [p.svc_port_name for p in got] == ["default/web:dns", "default/web:http"]
    dns, http = got
    assert dns.endpoints == () and dns.protocol == "UDP" and dns.node_port is None
    assert http.endpoints == (Endpoint("10.244.1.2", 8080), Endpoint("10.244.1.3", 8080))
    assert http.node_port == 30080 and http.affinity_seconds == 60
