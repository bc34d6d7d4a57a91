"""policy.cases: case loading and validation, placeholders (IPv4 and IPv6), the x/y/z model,
and every case of the project corpus agreeing with the oracle in both families."""

import copy
import re
from pathlib import Path

import pytest
import yaml

from orchestrator import api
from orchestrator.errors import ValidationError
from policy import cases, oracle

REPO = Path(__file__).resolve().parents[2]
CORPUS = REPO / "conformance" / "cases"
NOW = "2024-01-01T00:00:00Z"
PODCIDR = "10.244.0.0/16"
# A fixed fake assignment: one /26 block per namespace's worth of pods, like three nodes.
IPS = {"x/a": "10.244.0.2", "x/b": "10.244.0.3", "x/c": "10.244.0.4",
       "y/a": "10.244.0.66", "y/b": "10.244.0.67", "y/c": "10.244.0.68",
       "z/a": "10.244.0.130", "z/b": "10.244.0.131", "z/c": "10.244.0.132"}
# The same pods' IPv6 addresses: one /122 block of the default IPv6 pool per node.
PODCIDR6 = "fd00:10:244::/56"
IPS6 = {"x/a": "fd00:10:244::2", "x/b": "fd00:10:244::3", "x/c": "fd00:10:244::4",
        "y/a": "fd00:10:244::42", "y/b": "fd00:10:244::43", "y/c": "fd00:10:244::44",
        "z/a": "fd00:10:244::82", "z/b": "fd00:10:244::83", "z/c": "fd00:10:244::84"}
FAMILY = {4: (IPS, PODCIDR), 6: (IPS6, PODCIDR6)}


def _api_serves_networkpolicy() -> bool:
    info = api.KINDS.get("NetworkPolicy")
    return info is not None and "networking.k8s.io/v1" in info.api_versions


def defaulted(manifest: dict) -> dict:
    """API-server defaulting: the real normalizer when the API has the kind, else the two
    documented defaults (ports[].protocol TCP; policyTypes Ingress + Egress if egress rules)."""
    if _api_serves_networkpolicy():
        return api.normalize(manifest, now=NOW)
    m = copy.deepcopy(manifest)
    spec = m["spec"]
    for direction in ("ingress", "egress"):
        for rule in spec.get(direction) or []:
            for port in rule.get("ports") or []:
                port.setdefault("protocol", "TCP")
    spec.setdefault("policyTypes", ["Ingress"] + (["Egress"] if spec.get("egress") else []))
    return m


def _files(directory: Path) -> list[Path]:
    return sorted(directory.glob("*.yaml")) if directory.is_dir() else []


def _check_against_oracle(path: Path, family: int = 4) -> None:
    case = cases.load_case(path)
    ips, podcidr = FAMILY[family]
    for n, step, model, policies in cases.replay(case, cases.x_y_z_model(ips), ips=ips,
                                                 podcidr=podcidr, normalize=defaulted):
        for probe in step.probes:
            got = oracle.matrix(model, policies, probe.port, probe.protocol)
            want = cases.expected_matrix(step, probe, model)
            wrong = [f"{s} -> {d}: expected {'allowed' if want[(s, d)] else 'denied'}\n"
                     + str(oracle.explain(model, policies, s, d, probe.port, probe.protocol))
                     for (s, d) in want if got[(s, d)] != want[(s, d)]]
            assert not wrong, (f"{path.name} IPv{family} step {n} {probe.key}:\n"
                               + "\n".join(wrong))


@pytest.mark.parametrize("family", [4, 6], ids=["ipv4", "ipv6"])
@pytest.mark.parametrize("path", _files(CORPUS), ids=lambda p: p.name)
def test_corpus_case_agrees_with_oracle(path, family):
    # In IPv6 the placeholders are the pods' IPv6 addresses (/32 -> /128) and the IPv6 pool;
    # the expectations are the same files' (a host prefix left at /32 would cover the pool).
    _check_against_oracle(path, family)


def test_corpus_shape():
    files = _files(CORPUS)
    assert len(files) >= 60
    loaded = cases.load_dir(CORPUS)
    assert len(loaded) == len(files)
    for path, case in zip(files, loaded):
        m = re.match(r"^(\d{3})-(.+)\.yaml$", path.name)
        assert m and m.group(2) == case.name, path.name
        assert case.source and case.why and case.tags, path.name
        assert case.source == "original" or case.source.startswith("NetworkPolicy between")


def test_corpus_covers_the_required_topics():
    tags = {t for c in cases.load_dir(CORPUS) for t in c.tags}
    for needed in ("default-deny", "allow-all", "op-in", "op-notin", "op-exists",
                   "op-doesnotexist", "namespace-selector", "combined-peer", "or-peers",
                   "ipblock", "ipblock-except", "numbered-port", "named-port", "endport", "udp",
                   "sctp", "union", "both-sides", "policytypes-defaulting", "update-policy",
                   "delete-policy", "label-update", "namespace-label-update", "steps",
                   "empty-podselector-namespaceselector", "ingress", "egress"):
        assert needed in tags, needed


@pytest.mark.skipif(not _api_serves_networkpolicy(), reason="API has no NetworkPolicy kind yet")
@pytest.mark.parametrize("family", [4, 6], ids=["ipv4", "ipv6"])
def test_corpus_manifests_pass_api_validation(family):
    ips, podcidr = FAMILY[family]
    for case in cases.load_dir(CORPUS):
        for step in case.steps:
            for manifest in step.apply:
                api.normalize(cases.substitute(manifest, ips, podcidr), now=NOW)


def test_corpus_ipblocks_are_ipv6_in_an_ipv6_run():
    # Every address-valued ipBlock string the placeholders make is of the run's family, and
    # every host prefix is the family's full length.
    import ipaddress

    def strings(obj):
        if isinstance(obj, dict):
            obj = list(obj.values())
        if isinstance(obj, list):
            return [s for v in obj for s in strings(v)]
        return [obj] if isinstance(obj, str) else []

    seen = 0
    for case in cases.load_dir(CORPUS):
        for step in case.steps:
            for manifest in step.apply:
                done_all = strings(cases.substitute(manifest, IPS6, PODCIDR6))
                for text, done in zip(strings(manifest), done_all, strict=True):
                    if "{{" not in text:
                        assert text == done
                        continue
                    net = ipaddress.ip_network(done)
                    seen += 1
                    assert net.version == 6, (case.name, done)
                    if "{{ip" in text:
                        assert net.prefixlen == 128 and str(net.network_address) in \
                            IPS6.values(), (case.name, done)
                    else:
                        assert done == PODCIDR6
    assert seen >= 15


def test_x_y_z_model():
    model = cases.x_y_z_model(IPS)
    assert model.namespaces["y"] == {"ns": "y", "kubernetes.io/metadata.name": "y"}
    assert set(model.namespaces) == {"x", "y", "z"}
    assert model.keys() == ["x/a", "x/b", "x/c", "y/a", "y/b", "y/c", "z/a", "z/b", "z/c"]
    zb = model.pod("z/b")
    assert zb["labels"] == {"pod": "b"} and zb["ip"] == "10.244.0.131"
    assert {(p["name"], p["port"], p["protocol"]) for p in zb["ports"]} == {
        ("serve-80-tcp", 80, "TCP"), ("serve-80-udp", 80, "UDP"), ("serve-80-sctp", 80, "SCTP"),
        ("serve-81-tcp", 81, "TCP"), ("serve-81-udp", 81, "UDP"), ("serve-81-sctp", 81, "SCTP")}
    assert cases.x_y_z_model().pod("x/a")["ip"] is None


def test_substitute():
    obj = {"cidr": "{{ip x/b}}/32", "except": ["{{ podcidr }}", "{{ip  z/c}}/32"], "n": 3,
           "keep": None}
    before = copy.deepcopy(obj)
    assert cases.substitute(obj, IPS, PODCIDR) == {
        "cidr": "10.244.0.3/32", "except": ["10.244.0.0/16", "10.244.0.132/32"], "n": 3,
        "keep": None}
    assert obj == before
    with pytest.raises(ValidationError, match="x/d"):
        cases.substitute("{{ip x/d}}", IPS, PODCIDR)
    with pytest.raises(ValidationError, match="unknown placeholder"):
        cases.substitute("{{nodecidr}}", IPS, PODCIDR)


def test_substitute_ipv6_keeps_the_host_bits_of_an_ipv4_prefix():
    obj = {"cidr": "{{ip x/b}}/32", "except": ["{{ podcidr }}", "{{ip  z/c}}/24", "{{ip y/a}}"],
           "wide": "{{ip y/c}}/0", "two": "{{ip x/a}}/32,{{ip x/c}}/31"}
    assert cases.substitute(obj, IPS6, PODCIDR6) == {
        "cidr": "fd00:10:244::3/128",
        "except": ["fd00:10:244::/56", "fd00:10:244::84/120", "fd00:10:244::42"],
        "wide": "fd00:10:244::44/96", "two": "fd00:10:244::2/128,fd00:10:244::4/127"}
    # the same text in IPv4 is left as written
    assert cases.substitute(obj, IPS, PODCIDR)["cidr"] == "10.244.0.3/32"
    assert cases.substitute(obj, IPS, PODCIDR)["except"][1] == "10.244.0.132/24"
    with pytest.raises(ValidationError, match="0-32"):
        cases.substitute("{{ip x/a}}/128", IPS6, PODCIDR6)
    with pytest.raises(ValidationError, match="CIDR already"):
        cases.substitute("{{podcidr}}/64", IPS6, PODCIDR6)


def test_x_y_z_model_in_ipv6_and_its_ipblocks():
    model = cases.x_y_z_model(IPS6)
    assert model.pod("y/b")["ip"] == "fd00:10:244::43"
    allow_x_b = {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
                 "metadata": {"name": "p", "namespace": "x"},
                 "spec": {"podSelector": {"matchLabels": {"pod": "a"}},
                          "ingress": [{"from": [{"ipBlock": {"cidr": "{{ip x/b}}/32"}}]}]}}
    v6 = defaulted(cases.substitute(allow_x_b, IPS6, PODCIDR6))
    m = oracle.matrix(model, [v6], 80, "TCP")
    assert {s for (s, d), ok in m.items() if d == "x/a" and ok} == {"x/b"}
    # The IPv4 policy says nothing about IPv6 traffic: x/a is closed to every IPv6 source.
    v4 = defaulted(cases.substitute(allow_x_b, IPS, PODCIDR))
    m = oracle.matrix(model, [v4], 80, "TCP")
    assert not any(ok for (s, d), ok in m.items() if d == "x/a")


def test_single_step_form_and_expected_matrix(tmp_path):
    path = _write(tmp_path, {"name": "t", "policies": [], "probes": [{"port": 80,
                                                                      "protocol": "UDP"}],
                             "expect": {"UDP/80": ["x/a -> y/b"]}})
    case = cases.load_case(path)
    assert len(case.steps) == 1 and case.steps[0].expect == {"UDP/80": [("x/a", "y/b")]}
    assert case.steps[0].probes == [cases.Probe(80, "UDP")]
    m = cases.expected_matrix(case.steps[0], "UDP/80", cases.XYZ_PODS)
    assert len(m) == 72 and m[("x/a", "y/b")] is False and m[("y/b", "x/a")] is True
    assert sum(not v for v in m.values()) == 1


def test_replay_carries_state_and_merges_labels(tmp_path):
    deny = {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": {"name": "d", "namespace": "x"}, "spec": {"podSelector": {}}}
    path = _write(tmp_path, {"name": "t", "steps": [
        {"apply": [deny], "add_namespace_labels": [{"namespace": "y", "labels": {"a": "1"}}],
         "probes": [], "expect": {}},
        {"add_pod_labels": [{"pod": "x/b", "labels": {"pod": "q"}}]},
        {"delete": [{"namespace": "x", "name": "d"}]},
        {"delete": [{"namespace": "x", "name": "d"}]}]})
    start = cases.x_y_z_model(IPS)
    seen = []
    with pytest.raises(ValidationError) as exc:
        for n, _step, model, policies in cases.replay(cases.load_case(path), start, ips=IPS,
                                                      podcidr=PODCIDR):
            seen.append((n, model.namespaces["y"].get("a"), model.pod("x/b")["labels"]["pod"],
                         [p["metadata"]["name"] for p in policies]))
    assert seen == [(1, "1", "b", ["d"]), (2, "1", "q", ["d"]), (3, "1", "q", [])]
    assert "step 4" in str(exc.value) and exc.value.field == "steps[3].delete[0]"
    assert start.pod("x/b")["labels"] == {"pod": "b"} and "a" not in start.namespaces["y"]


def _write(tmp_path: Path, doc, name="case.yaml") -> Path:
    path = tmp_path / name
    path.write_text(doc if isinstance(doc, str) else yaml.safe_dump(doc))
    return path


GOOD_STEP = {"probes": [{"port": 80, "protocol": "TCP"}], "expect": {"TCP/80": []}}


@pytest.mark.parametrize("doc,field,words", [
    ({"name": "t", "bogus": 1, **GOOD_STEP}, "bogus", "unknown field"),
    ({"name": "t", "steps": [GOOD_STEP, {**GOOD_STEP, "aply": []}]}, "steps[1].aply",
     "unknown field"),
    ({"name": "t", "steps": [GOOD_STEP, {"probes": [{"port": 80, "protocol": "ICMP"}],
                                         "expect": {}}]},
     "steps[1].probes[0].protocol", "Unsupported value"),
    ({"name": "t", "probes": [{"port": 0, "protocol": "TCP"}], "expect": {}}, "probes[0].port",
     "port number"),
    ({"name": "t", "probes": [{"port": 80, "protocol": "TCP"}],
      "expect": {"tcp/80": []}}, "expect.tcp/80", "<PROTO>/<port>"),
    ({"name": "t", "probes": [{"port": 80, "protocol": "TCP"}],
      "expect": {"TCP/80": [], "UDP/80": []}}, "expect.UDP/80", "no probe"),
    ({"name": "t", "steps": [GOOD_STEP, {"probes": [{"port": 80, "protocol": "TCP"}],
                                         "expect": {"TCP/80": ["x/a->x/b"]}}]},
     "steps[1].expect.TCP/80[0]", "ns/pod -> ns/pod"),
    ({"name": "t", "probes": [{"port": 80, "protocol": "TCP"}],
      "expect": {"TCP/80": ["x/a -> w/b"]}}, "expect.TCP/80[0]", "unknown pod 'w/b'"),
    ({"name": "t", "probes": [{"port": 80, "protocol": "TCP"}],
      "expect": {"TCP/80": ["x/a -> x/a"]}}, "expect.TCP/80[0]", "self pair"),
    ({"name": "t", "probes": [{"port": 80, "protocol": "TCP"}],
      "expect": {"TCP/80": ["x/a -> x/b", "x/a -> x/b"]}}, "expect.TCP/80[1]", "Duplicate"),
    ({"name": "t", "steps": [GOOD_STEP, {"probes": [{"port": 80, "protocol": "TCP"},
                                                    {"port": 81, "protocol": "UDP"}],
                                         "expect": {"TCP/80": []}}]},
     "steps[1].expect.UDP/81", "has no expectation"),
    ({"name": "t", "probes": [{"port": 80, "protocol": "TCP"}] * 2, "expect": {"TCP/80": []}},
     "probes[1]", "Duplicate"),
    ({"name": "t", "steps": [GOOD_STEP], **GOOD_STEP}, "probes", "cannot be combined"),
    ({"name": "t", "policies": [{"spec": {"cidr": "{{ip x/q}}/32"}}], **GOOD_STEP},
     "policies[0]", "unknown pod 'x/q'"),
    ({"name": "t", "policies": [{"spec": {"cidr": "{{iP x/a}}"}}], **GOOD_STEP},
     "policies[0]", "unknown placeholder"),
    ({"name": "t", "policies": [{"spec": {"cidr": "{{ip x/a}}/128"}}], **GOOD_STEP},
     "policies[0]", "is an IPv4 one, 0-32 (an IPv6 run adds 96: /32 is /128)"),
    ({"name": "t", "steps": [{**GOOD_STEP, "apply": [{"spec": {"cidr": "{{podcidr}}/16"}}]}]},
     "steps[0].apply[0]", "{{podcidr}} is a CIDR already"),
    ({"name": "t", "steps": [{**GOOD_STEP, "add_pod_labels": [{"pod": "x/q",
                                                                "labels": {"a": "b"}}]}]},
     "steps[0].add_pod_labels[0].pod", "unknown pod"),
    ({"name": "t", "steps": [{**GOOD_STEP, "add_namespace_labels": [{"namespace": "w",
                                                                      "labels": {"a": "b"}}]}]},
     "steps[0].add_namespace_labels[0].namespace", "unknown namespace"),
    ({"name": "t", "steps": [{**GOOD_STEP, "delete": [{"namespace": "x"}]}]},
     "steps[0].delete[0].name", "Required"),
    ({"name": "t", "steps": []}, "steps", "at least one step"),
    ({"name": "t", "policies": []}, "probes", "needs probes"),
    ({"probes": [], "expect": {}}, "name", "Required"),
    ({"name": "t", "tags": "a", **GOOD_STEP}, "tags", "must be a list"),
])
def test_loader_errors_name_file_step_and_field(tmp_path, doc, field, words):
    path = _write(tmp_path, doc)
    with pytest.raises(ValidationError) as exc:
        cases.load_case(path)
    err = exc.value
    assert err.source == str(path) and err.field == field and words in err.message, str(err)
    step = re.match(r"steps\[(\d+)\]", field)
    assert err.obj == (f"step {int(step.group(1)) + 1}" if step else None)
    assert str(path) in str(err)


def test_loader_rejects_bad_yaml_and_non_mapping(tmp_path):
    with pytest.raises(ValidationError, match="not valid YAML"):
        cases.load_case(_write(tmp_path, "name: [unclosed\n"))
    with pytest.raises(ValidationError, match="must be a mapping"):
        cases.load_case(_write(tmp_path, "- 1\n"))


def test_load_dir_rejects_duplicate_names_and_missing_dir(tmp_path):
    _write(tmp_path, {"name": "same", **GOOD_STEP}, "001-a.yaml")
    _write(tmp_path, {"name": "same", **GOOD_STEP}, "002-b.yml")
    (tmp_path / "README.md").write_text("not a case")
    with pytest.raises(ValidationError, match="duplicate case name") as exc:
        cases.load_dir(tmp_path)
    assert exc.value.source.endswith("002-b.yml")
    with pytest.raises(ValidationError, match="not a directory"):
        cases.load_dir(tmp_path / "missing")
