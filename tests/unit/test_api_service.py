"""Service / Endpoints / EndpointSlice: the API server's defaults and validation errors."""

from __future__ import annotations

import pytest

from orchestrator.api import normalize, resolve_kind
from orchestrator.errors import ValidationError

NOW = "2026-01-01T00:00:00Z"


def svc(**spec):
    spec.setdefault("ports", [{"port": 80}])
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"}, "spec": spec}


def err(obj) -> ValidationError:
    with pytest.raises(ValidationError) as exc:
        normalize(obj, now=NOW)
    return exc.value


def test_defaults():
    out = normalize(svc(selector={"app": "web"}), now=NOW)
    assert out["metadata"]["namespace"] == "default"
    assert out["spec"] == {
        "type": "ClusterIP", "ports": [{"protocol": "TCP", "port": 80, "targetPort": 80}],
        "selector": {"app": "web"}, "sessionAffinity": "None",
        "internalTrafficPolicy": "Cluster"}
    # ipFamilies / ipFamilyPolicy default at allocation, from the cluster's families
    # (test_serviceips).
    assert "status" not in out


def test_kinds_resolve():
    assert resolve_kind("svc").kind == "Service"
    assert resolve_kind("ep").kind == "Endpoints"
    assert resolve_kind("endpointslices.discovery.k8s.io").kind == "EndpointSlice"


def test_named_target_port_node_port_and_affinity_default():
    out = normalize(svc(type="NodePort", sessionAffinity="ClientIP", ports=[
        {"name": "http", "port": 80, "targetPort": "web", "nodePort": 30080},
        {"name": "dns", "port": 53, "protocol": "UDP"}]), now=NOW)
    sp = out["spec"]
    assert sp["ports"][0] == {"name": "http", "protocol": "TCP", "port": 80,
                              "targetPort": "web", "nodePort": 30080}
    assert sp["ports"][1]["targetPort"] == 53
    assert sp["sessionAffinityConfig"] == {"clientIP": {"timeoutSeconds": 10800}}
    assert sp["externalTrafficPolicy"] == "Cluster"


def test_headless_needs_no_ports():
    out = normalize(svc(clusterIP="None", ports=None), now=NOW)
    assert out["spec"]["clusterIP"] == "None" and out["spec"]["clusterIPs"] == ["None"]


@pytest.mark.parametrize("spec,field,words", [
    ({"ports": None}, "spec.ports", "Required value"),
    ({"type": "Foo"}, "spec.type", "Unsupported value"),
    ({"type": "LoadBalancer"}, "spec.type", "ClusterIP and NodePort"),
    ({"clusterIP": "10.96.0.300"}, "spec.clusterIP", "valid IP address"),
    ({"type": "NodePort", "clusterIP": "None"}, "spec.clusterIP", "may not be set to 'None'"),
    ({"ports": [{"port": 0}]}, "spec.ports[0].port", "greater than or equal to 1"),
    ({"ports": [{"port": 80, "protocol": "tcp"}]}, "spec.ports[0].protocol", "Unsupported"),
    ({"ports": [{"port": 80, "targetPort": "8080"}]}, "spec.ports[0].targetPort",
     "at least one letter"),
    ({"ports": [{"port": 80, "targetPort": 70000}]}, "spec.ports[0].targetPort",
     "less than or equal to 65535"),
    ({"ports": [{"port": 80, "nodePort": 30080}]}, "spec.ports[0].nodePort", "Forbidden"),
    ({"ports": [{"name": "a", "port": 80}, {"port": 81}]}, "spec.ports[1].name",
     "Required value"),
    ({"ports": [{"name": "a", "port": 80}, {"name": "a", "port": 81}]}, "spec.ports[1].name",
     "Duplicate value"),
    ({"ports": [{"name": "a", "port": 80}, {"name": "b", "port": 80}]}, "spec.ports[1]",
     "Duplicate value"),
    ({"ports": [{"name": "Http", "port": 80}]}, "spec.ports[0].name", "RFC 1123"),
    ({"sessionAffinity": "Cookie"}, "spec.sessionAffinity", "Unsupported"),
    ({"sessionAffinity": "ClientIP",
      "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 86401}}},
     "spec.sessionAffinityConfig.clientIP.timeoutSeconds", "less than or equal to 86400"),
    ({"selector": {"app": "a b"}}, "spec.selector[app]", "valid label"),
    ({"portz": []}, "spec.portz", "unknown field"),
])
def test_errors_name_the_field(spec, field, words):
    e = err(svc(**spec))
    assert e.field == field, str(e)
    assert words in str(e)


def test_endpointslice_and_endpoints_bodies():
    sl = normalize({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
                    "metadata": {"name": "web-x", "labels":
                                 {"kubernetes.io/service-name": "web"}},
                    "addressType": "IPv4",
                    "endpoints": [{"addresses": ["10.244.1.2"], "conditions": {"ready": True}}],
                    "ports": [{"name": "http", "port": 8080}]}, now=NOW)
    assert "spec" not in sl
    assert sl["ports"] == [{"name": "http", "port": 8080, "protocol": "TCP"}]
    ep = normalize({"apiVersion": "v1", "kind": "Endpoints", "metadata": {"name": "web"},
                    "subsets": [{"addresses": [{"ip": "10.244.1.2"}],
                                 "ports": [{"port": 8080}]}]}, now=NOW)
    assert ep["subsets"][0]["ports"] == [{"port": 8080, "protocol": "TCP"}]


@pytest.mark.parametrize("body,field", [
    ({"endpoints": []}, "addressType"),
    ({"addressType": "IPv5"}, "addressType"),
    ({"addressType": "IPv4", "endpoints": [{"addresses": ["x"]}]}, "endpoints[0].addresses[0]"),
    ({"addressType": "IPv4", "endpoints": [{"addresses": []}]}, "endpoints[0].addresses"),
    ({"addressType": "IPv4", "ports": [{"port": 99999}]}, "ports[0].port"),
])
def test_endpointslice_errors(body, field):
    e = err({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
             "metadata": {"name": "s"}, **body})
    assert e.field == field, str(e)


def test_get_svc_table_like_kubectl():
    from orchestrator.present.printers import table
    objs = [normalize(svc(clusterIP="10.96.0.50", selector={"app": "web"}), now=NOW),
            normalize(svc(type="NodePort", clusterIP="10.96.0.51",
                          ports=[{"name": "a", "port": 80, "nodePort": 30080},
                                 {"name": "b", "port": 53, "protocol": "UDP",
                                  "nodePort": 30053}]), now=NOW),
            normalize(svc(clusterIP="None", ports=None), now=NOW)]
    for o, name in zip(objs, ("web", "np", "headless")):
        o["metadata"]["name"] = name
    text = table("svc", objs, now="2026-01-01T00:05:00Z")
    assert text.splitlines() == [
        "NAME       TYPE        CLUSTER-IP   EXTERNAL-IP   PORT(S)                     AGE",
        "headless   ClusterIP   None         <none>        <none>                      5m",
        "np         NodePort    10.96.0.51   <none>        80:30080/TCP,53:30053/UDP   5m",
        "web        ClusterIP   10.96.0.50   <none>        80/TCP                      5m",
    ]
    wide = table("services", objs[:1], wide=True, now="2026-01-01T00:05:00Z")
    assert wide.splitlines()[0].endswith("SELECTOR") and wide.splitlines()[1].endswith("app=web")
