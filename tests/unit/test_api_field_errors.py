"""Every field error of one object at once, as the API server's ErrorList: for every kind, an
object with two independent errors gets both in one ValidationError, rendered as kubectl's
multi-line "* field: message" list; a single error renders exactly as before; nothing of a
rejected apply reaches the store; `calinet validate` prints them all."""

from __future__ import annotations

import pytest

from orchestrator.api import load_documents, normalize, normalize_all
from orchestrator.api.pod import normalize_pod_spec
from orchestrator.errors import FieldError, ValidationError

NOW = "2026-01-01T00:00:00Z"
BAD_NAME = "Bad_Name"
CONTAINERS = [{"name": "c", "image": "agnhost"}]


def _template(labels: dict, restart: str = "Always", port: int = 80) -> dict:
    return {"metadata": {"labels": labels},
            "spec": {"restartPolicy": restart,
                     "containers": [{"name": "c", "image": "agnhost",
                                     "ports": [{"containerPort": port}]}]}}


def _obj(api_version: str, kind: str, meta: dict, **body) -> dict:
    return {"apiVersion": api_version, "kind": kind, "metadata": meta, **body}


# kind -> (an object with at least two independent errors, the fields every one names)
CASES = {
    "Pod": (_obj("v1", "Pod", {"name": BAD_NAME}, spec={"containers": [
        {"name": "c", "image": "agnhost", "ports": [{"containerPort": 70000}]}]}),
        ["metadata.name", "spec.containers[0].ports[0].containerPort"]),
    "Deployment": (_obj("apps/v1", "Deployment", {"name": "d"}, spec={
        "replicas": -1, "selector": {"matchLabels": {"app": "d"}},
        "template": _template({"app": "d"}, port=0)}),
        ["spec.replicas", "spec.template.spec.containers[0].ports[0].containerPort"]),
    "ReplicaSet": (_obj("apps/v1", "ReplicaSet", {"name": "r", "labels": {"a": "-x"}}, spec={
        "selector": {"matchLabels": {"app": "r"}}, "template": _template({"app": "other"})}),
        ["metadata.labels[a]", "spec.template.metadata.labels"]),
    "StatefulSet": (_obj("apps/v1", "StatefulSet", {"name": "s"}, spec={
        "selector": {"matchLabels": {"app": "s"}}, "template": _template({"app": "s"}),
        "podManagementPolicy": "Sometimes", "updateStrategy": {"type": "Never"}}),
        ["spec.serviceName", "spec.podManagementPolicy", "spec.updateStrategy.type"]),
    "DaemonSet": (_obj("apps/v1", "DaemonSet", {"name": "ds", "namespace": "Bad"}, spec={
        "selector": {"matchLabels": {"app": "ds"}},
        "template": _template({"app": "ds"}, restart="Never")}),
        ["metadata.namespace", "spec.template.spec.restartPolicy"]),
    "Job": (_obj("batch/v1", "Job", {"name": "j"}, spec={
        "backoffLimit": -1, "completionMode": "Indexed",
        "template": _template({}, restart="Always")}),
        ["spec.backoffLimit", "spec.completionMode", "spec.template.spec.restartPolicy"]),
    "CronJob": (_obj("batch/v1", "CronJob", {"name": "cj"}, spec={
        "schedule": "* * *", "concurrencyPolicy": "Sometimes",
        "jobTemplate": {"spec": {"template": _template({}, restart="Never", port=-1)}}}),
        ["spec.schedule", "spec.concurrencyPolicy",
         "spec.jobTemplate.spec.template.spec.containers[0].ports[0].containerPort"]),
    "Service": (_obj("v1", "Service", {"name": "svc"}, spec={
        "clusterIP": "10.96.0.300", "sessionAffinity": "Sticky",
        "ports": [{"port": 80, "protocol": "ICMP"}, {"name": "b", "port": 0}]}),
        ["spec.clusterIP", "spec.ports[0].name", "spec.ports[0].protocol", "spec.ports[1].port",
         "spec.sessionAffinity"]),
    "Namespace": (_obj("v1", "Namespace", {"name": "Bad.ns"}, spec={"finalizers": [7]}),
                  ["metadata.name", "spec.finalizers[0]"]),
    "NetworkPolicy": (_obj("networking.k8s.io/v1", "NetworkPolicy", {"name": "np"}, spec={
        "podSelector": {"matchLabels": {"a": "b c"}}, "policyTypes": ["Sideways"],
        "ingress": [{"from": [{"ipBlock": {"cidr": "10.0.0.0"}}], "ports": [{"port": 0}]}]}),
        ["spec.podSelector.matchLabels[a]", "spec.ingress[0].ports[0].port",
         "spec.ingress[0].from[0].ipBlock.cidr", "spec.policyTypes[0]"]),
    "NetworkPolicy.projectcalico.org": (_obj("projectcalico.org/v3", "NetworkPolicy",
                                             {"name": "a.b.c"}, spec={
        "order": "first", "ingress": [{"action": "Maybe"},
                                      {"action": "Allow", "protocol": "TCP",
                                       "destination": {"ports": [70000]}}]}),
        ["metadata.name", "spec.order", "spec.ingress[0].action",
         "spec.ingress[1].destination.ports[0]"]),
    "GlobalNetworkPolicy": (_obj("projectcalico.org/v3", "GlobalNetworkPolicy", {"name": "g"},
                                 spec={"tier": "security", "doNotTrack": True,
                                       "types": ["Ingress", "Ingress"]}),
                            ["spec.tier", "spec.doNotTrack", "spec.types[1]"]),
    "IPPool": (_obj("projectcalico.org/v3", "IPPool", {"name": "p"}, spec={
        "cidr": "10.0.0.1/16", "ipipMode": "Sometimes", "allowedUses": ["Everything"]}),
        ["spec.cidr", "spec.ipipMode", "spec.allowedUses[0]"]),
    "BGPConfiguration": (_obj("projectcalico.org/v3", "BGPConfiguration", {"name": "mine"},
                              spec={"asNumber": "not-a-number"}),
                         ["metadata.name", "spec.asNumber"]),
    "BGPPeer": (_obj("projectcalico.org/v3", "BGPPeer", {"name": BAD_NAME},
                     spec={"node": 7, "peerIP": "300.1.1.1", "asNumber": 64512}),
                ["metadata.name", "spec.node", "spec.peerIP"]),
    "Node": (_obj("v1", "Node", {"name": "n1", "labels": {"-x": "y"}}, spec={
        "unschedulable": "yes", "taints": [{"key": "k", "effect": "Sometimes"}]}),
        ["metadata.labels", "spec.unschedulable", "spec.taints[0].effect"]),
    "Endpoints": (_obj("v1", "Endpoints", {"name": BAD_NAME}, subsets=[
        {"addresses": [{"ip": "10.0.0.300"}], "ports": [{"port": 0}]}]),
        ["metadata.name", "subsets[0].addresses[0].ip", "subsets[0].ports[0].port"]),
    "EndpointSlice": (_obj("discovery.k8s.io/v1", "EndpointSlice", {"name": BAD_NAME},
                           addressType="IPv5", endpoints=[]),
                      ["metadata.name", "addressType"]),
}


def _errors(obj: dict) -> ValidationError:
    with pytest.raises(ValidationError) as ei:
        normalize(obj, now=NOW, source="m.yaml", index=0)
    return ei.value


@pytest.mark.parametrize("key", sorted(CASES))
def test_every_kind_reports_all_its_field_errors(key):
    obj, fields = CASES[key]
    exc = _errors(obj)
    got = [e.field for e in exc.errors]
    assert got == fields, exc
    # The first error stays in the single-error attributes; the text lists every one.
    assert (exc.field, exc.message) == exc.errors[0]
    assert exc.source == "m.yaml" and exc.index == 0
    text = str(exc)
    assert f": {len(fields)} field errors:\n" in text
    for err in exc.errors:
        assert f"\n* {err.field}: {err.message}" in text


def test_kinds_cover_every_registered_kind():
    from orchestrator.api import KINDS
    assert set(CASES) == set(KINDS)


def test_the_multi_error_rendering_looks_like_kubectl():
    exc = _errors(CASES["Pod"][0])
    assert str(exc) == (
        f"m.yaml: document 0: Pod default/{BAD_NAME}: 2 field errors:\n"
        f"* metadata.name: Invalid value: {BAD_NAME!r}: a lowercase RFC 1123 subdomain must "
        "consist of lower case alphanumeric characters, '-' or '.', and must start and end "
        "with an alphanumeric character (e.g. 'example.com')\n"
        "* spec.containers[0].ports[0].containerPort: Invalid value: 70000: must be less "
        "than or equal to 65535")


def test_a_single_error_renders_as_before():
    obj = _obj("v1", "Pod", {"name": "web"}, spec={"containers": [
        {"name": "c", "image": "agnhost", "ports": [{"containerPort": 0}]}]})
    exc = _errors(obj)
    assert exc.errors == [FieldError("spec.containers[0].ports[0].containerPort",
                                     "Invalid value: 0: must be greater than or equal to 1")]
    assert str(exc) == ("m.yaml: document 0: Pod default/web: field "
                        "spec.containers[0].ports[0].containerPort: Invalid value: 0: must be "
                        "greater than or equal to 1")


def test_a_broken_subtree_is_skipped_but_its_siblings_are_checked():
    # containers not a list: nothing inside it to check; restartPolicy is still checked.
    exc = _errors(_obj("v1", "Pod", {"name": "p"},
                       spec={"containers": "c", "restartPolicy": "Sometimes"}))
    assert [e.field for e in exc.errors] == ["spec.containers", "spec.restartPolicy"]
    # One container that is not a mapping does not hide the next container's error.
    exc = _errors(_obj("v1", "Pod", {"name": "p"}, spec={"containers": [
        "c", {"name": "d", "image": "agnhost", "imagePullPolicy": "Sometimes"}]}))
    assert [e.field for e in exc.errors] == ["spec.containers[0]",
                                             "spec.containers[1].imagePullPolicy"]


def test_every_unknown_field_is_named():
    exc = _errors(_obj("v1", "Pod", {"name": "p", "nmae": "x"},
                       spec={"containers": CONTAINERS, "contianers": [], "nodeNmae": "n"}))
    assert [e.message for e in exc.errors] == [
        'unknown field "metadata.nmae"', 'unknown field "spec.contianers"',
        'unknown field "spec.nodeNmae"']


def test_no_kind_is_fatal_and_alone():
    exc = _errors({"apiVersion": "v1", "metadata": {"name": BAD_NAME}})
    assert [e.field for e in exc.errors] == ["kind"]


def test_validators_called_directly_still_raise_the_first_error():
    with pytest.raises(ValidationError) as ei:
        normalize_pod_spec({"containers": "c", "restartPolicy": "Sometimes"}, "spec")
    assert ei.value.field == "spec.containers" and len(ei.value.errors) == 1


def test_list_items_prefix_every_field(tmp_path):
    text = ("apiVersion: v1\nkind: List\nitems:\n"
            "- {apiVersion: v1, kind: Namespace, metadata: {name: ok}}\n"
            "- apiVersion: v1\n  kind: Pod\n  metadata: {name: Bad_Name}\n"
            "  spec: {containers: [{name: c, image: agnhost}], dnsPolicy: Nope}\n")
    path = tmp_path / "list.yaml"
    path.write_text(text)
    with pytest.raises(ValidationError) as ei:
        normalize_all(load_documents(str(path)), now=NOW)
    exc = ei.value
    assert [e.field for e in exc.errors] == ["items[1].metadata.name", "items[1].spec.dnsPolicy"]
    assert exc.source == str(path) and exc.index == 0 and exc.field == "items[1].metadata.name"


def test_located_keeps_every_error():
    exc = ValidationError.of([FieldError("a", "x"), FieldError("b", "y")])
    moved = exc.located(source="f", index=2, obj="Pod default/p")
    assert moved.errors == exc.errors and (moved.source, moved.index) == ("f", 2)
    assert str(moved) == "f: document 2: Pod default/p: 2 field errors:\n* a: x\n* b: y"


BAD_APPLY = (
    "apiVersion: v1\nkind: Namespace\nmetadata: {name: fresh}\n---\n"
    "apiVersion: v1\nkind: Pod\nmetadata: {name: Bad_Name, namespace: fresh}\n"
    "spec:\n  containers: [{name: c, image: agnhost, ports: [{containerPort: 70000}]}]\n")


def test_client_apply_with_field_errors_changes_nothing(tmp_path):
    from orchestrator.control.client import Client
    from orchestrator.control.nodes import system_namespaces
    from orchestrator.control.store import Store

    store = Store(str(tmp_path / "s.db"))
    for ns in system_namespaces():
        store.create(ns)
    before = {kind: store.list(kind) for kind in ("Namespace", "Pod")}
    client = Client(store, clock=lambda: NOW)
    try:
        with pytest.raises(ValidationError) as ei:
            client.apply(BAD_APPLY)
        assert [e.field for e in ei.value.errors] == [
            "metadata.name", "spec.containers[0].ports[0].containerPort"]
        assert ei.value.index == 1
        assert {kind: store.list(kind) for kind in ("Namespace", "Pod")} == before
    finally:
        store.close()


def test_cli_validate_prints_every_error(tmp_path, capsys):
    from orchestrator.cli.main import main

    path = tmp_path / "bad.yaml"
    path.write_text(BAD_APPLY)
    assert main(["validate", "-f", str(path)]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"error: {path}: document 1: Pod fresh/Bad_Name: 2 field errors:\n")
    assert "\n* metadata.name: Invalid value: 'Bad_Name'" in err
    assert "\n* spec.containers[0].ports[0].containerPort: Invalid value: 70000" in err


def test_calinet_run_prints_field_paths_verbatim(monkeypatch, capsys):
    # rich markup would eat "[cpu]" and "[app]" from the paths.
    from types import SimpleNamespace

    from orchestrator.cli import run_cmd

    def invalid(path):
        raise ValidationError.of([FieldError("spec.resources.limits[cpu]", "x"),
                                  FieldError("metadata.labels[app]", "y")], source=path)
    monkeypatch.setattr(run_cmd.schema, "load", invalid)
    assert run_cmd.run_experiment(SimpleNamespace(experiment="e.yaml", out=None)) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "* spec.resources.limits[cpu]: x * metadata.labels[app]: y" in err
