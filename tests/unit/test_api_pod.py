"""Pod defaulting and validation through normalize()."""

import copy

import pytest

from orchestrator.api import normalize, qos_class
from orchestrator.errors import ValidationError

NOW = "2026-01-02T03:04:05Z"


def pod(name="web-0", namespace=None, **spec):
    spec.setdefault("containers", [{"name": "c", "image": "nginx"}])
    meta = {"name": name}
    if namespace:
        meta["namespace"] = namespace
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": spec}


def error(obj, **kw):
    with pytest.raises(ValidationError) as exc:
        normalize(obj, now=NOW, **kw)
    return exc.value


def test_defaults_golden():
    out = normalize(pod(), now=NOW)
    assert out == {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "web-0", "namespace": "default", "creationTimestamp": NOW},
        "spec": {
            "containers": [{
                "name": "c", "image": "nginx", "resources": {}, "imagePullPolicy": "Always",
                "terminationMessagePath": "/dev/termination-log",
                "terminationMessagePolicy": "File"}],
            "restartPolicy": "Always", "dnsPolicy": "ClusterFirst",
            "schedulerName": "default-scheduler", "terminationGracePeriodSeconds": 30,
            "securityContext": {},
        },
        "status": {"phase": "Pending", "qosClass": "BestEffort"},
    }


def test_returns_new_dict_and_leaves_input_alone():
    obj = pod(containers=[{"name": "c", "image": "x", "ports": [{"containerPort": 80}]}])
    before = copy.deepcopy(obj)
    out = normalize(obj, now=NOW)
    assert obj == before
    out["spec"]["containers"][0]["ports"][0]["name"] = "changed"
    assert obj == before


def test_explicit_values_kept():
    out = normalize(pod(namespace="x", restartPolicy="Never", dnsPolicy="Default",
                        terminationGracePeriodSeconds=0, schedulerName="mine",
                        nodeName="node-1", nodeSelector={"zone": "a"}), now=NOW)
    spec = out["spec"]
    assert out["metadata"]["namespace"] == "x"
    assert (spec["restartPolicy"], spec["dnsPolicy"], spec["terminationGracePeriodSeconds"],
            spec["schedulerName"], spec["nodeName"], spec["nodeSelector"]) == \
        ("Never", "Default", 0, "mine", "node-1", {"zone": "a"})


@pytest.mark.parametrize("image,policy", [
    ("nginx", "Always"), ("nginx:latest", "Always"), ("nginx:1.25", "IfNotPresent"),
    ("registry:5000/nginx", "Always"), ("registry:5000/nginx:1", "IfNotPresent"),
    ("nginx@sha256:abc", "IfNotPresent"),
])
def test_image_pull_policy_default(image, policy):
    out = normalize(pod(containers=[{"name": "c", "image": image}]), now=NOW)
    assert out["spec"]["containers"][0]["imagePullPolicy"] == policy


def test_ports_default_protocol_and_keep_names():
    out = normalize(pod(containers=[{"name": "c", "image": "x", "ports": [
        {"containerPort": 80, "name": "http"}, {"containerPort": 53, "protocol": "UDP"},
        {"containerPort": 9, "protocol": "SCTP", "name": "s-1"}]}]), now=NOW)
    assert out["spec"]["containers"][0]["ports"] == [
        {"containerPort": 80, "name": "http", "protocol": "TCP"},
        {"containerPort": 53, "protocol": "UDP"},
        {"containerPort": 9, "protocol": "SCTP", "name": "s-1"}]


def test_resources_strings_kept_and_requests_default_to_limits():
    out = normalize(pod(containers=[{"name": "c", "image": "x", "resources": {
        "limits": {"cpu": "500m", "memory": "128Mi"}, "requests": {"cpu": 0.25}}}]), now=NOW)
    res = out["spec"]["containers"][0]["resources"]
    assert res == {"limits": {"cpu": "500m", "memory": "128Mi"},
                   "requests": {"cpu": "0.25", "memory": "128Mi"}}
    assert out["status"]["qosClass"] == "Burstable"


def test_qos_classes():
    guaranteed = normalize(pod(containers=[{"name": "c", "image": "x", "resources": {
        "limits": {"cpu": "1", "memory": "1Gi"}}}]), now=NOW)
    assert guaranteed["status"]["qosClass"] == "Guaranteed"
    equal_forms = normalize(pod(containers=[{"name": "c", "image": "x", "resources": {
        "limits": {"cpu": "1", "memory": "1Gi"},
        "requests": {"cpu": "1000m", "memory": "1024Mi"}}}]), now=NOW)
    assert qos_class(equal_forms["spec"]) == "Guaranteed"
    burstable = normalize(pod(containers=[
        {"name": "a", "image": "x", "resources": {"limits": {"cpu": "1", "memory": "1Gi"}}},
        {"name": "b", "image": "x"}]), now=NOW)
    assert burstable["status"]["qosClass"] == "Burstable"


def test_status_dropped_unless_keep_status():
    obj = pod()
    obj["status"] = {"phase": "Running", "podIP": "10.244.0.5"}
    assert normalize(obj, now=NOW)["status"] == {"phase": "Pending", "qosClass": "BestEffort"}
    assert normalize(obj, now=NOW, keep_status=True)["status"] == obj["status"]


def test_tolerations_default_operator():
    out = normalize(pod(tolerations=[
        {"key": "k", "value": "v", "effect": "NoSchedule"},
        {"operator": "Exists"},
        {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute",
         "tolerationSeconds": 300}]), now=NOW)
    assert [t["operator"] for t in out["spec"]["tolerations"]] == ["Equal", "Exists", "Exists"]


def test_passthrough_of_real_fields_not_modelled():
    out = normalize(pod(volumes=[{"name": "v", "emptyDir": {}}], containers=[
        {"name": "c", "image": "x", "env": [{"name": "A", "value": "1"}],
         "readinessProbe": {"tcpSocket": {"port": "http"}}}]), now=NOW)
    assert out["spec"]["volumes"] == [{"name": "v", "emptyDir": {}}]
    assert out["spec"]["containers"][0]["readinessProbe"] == {"tcpSocket": {"port": "http"}}


C0 = "spec.containers[0]"


@pytest.mark.parametrize("spec,field,fragment", [
    ({"containers": []}, "spec.containers", "at least one container"),
    ({"containers": None}, "spec.containers", "Required"),
    ({"containers": [{"image": "x"}]}, f"{C0}.name", "Required"),
    ({"containers": [{"name": "Web", "image": "x"}]}, f"{C0}.name", "RFC 1123 label"),
    ({"containers": [{"name": "c"}]}, f"{C0}.image", "Required"),
    ({"containers": [{"name": "c", "image": ""}]}, f"{C0}.image", "Required"),
    ({"containers": [{"name": "c", "image": "x"}, {"name": "c", "image": "y"}]},
     "spec.containers[1].name", "Duplicate"),
    ({"containers": [{"name": "c", "image": "x", "command": "sleep 1"}]},
     f"{C0}.command", "list"),
    ({"containers": [{"name": "c", "image": "x", "args": ["a", 1]}]},
     f"{C0}.args[1]", "string"),
    ({"containers": [{"name": "c", "image": "x", "ports": [{"name": "http"}]}]},
     f"{C0}.ports[0].containerPort", "Required"),
    ({"containers": [{"name": "c", "image": "x", "ports": [{"containerPort": 80},
                                                           {"containerPort": 0}]}]},
     f"{C0}.ports[1].containerPort", "greater than or equal to 1"),
    ({"containers": [{"name": "c", "image": "x", "ports": [{"containerPort": 65536}]}]},
     f"{C0}.ports[0].containerPort", "less than or equal to 65535"),
    ({"containers": [{"name": "c", "image": "x", "ports": [{"containerPort": "80"}]}]},
     f"{C0}.ports[0].containerPort", "integer"),
    ({"containers": [{"name": "c", "image": "x", "ports": [{"containerPort": 80,
                                                            "protocol": "ICMP"}]}]},
     f"{C0}.ports[0].protocol", "Unsupported value"),
    ({"containers": [{"name": "c", "image": "x", "ports": [{"containerPort": 80,
                                                            "protocol": "tcp"}]}]},
     f"{C0}.ports[0].protocol", "Unsupported value"),
    ({"containers": [{"name": "c", "image": "x", "ports": [
        {"containerPort": 80, "name": "http"}, {"containerPort": 81, "name": "http"}]}]},
     f"{C0}.ports[1].name", "Duplicate"),
    ({"containers": [{"name": "c", "image": "x", "ports": [
        {"containerPort": 80, "name": "a-very-long-port-name"}]}]},
     f"{C0}.ports[0].name", "15"),
    ({"containers": [{"name": "c", "image": "x", "ports": [
        {"containerPort": 80, "name": "Http"}]}]}, f"{C0}.ports[0].name", "alpha-numeric"),
    ({"containers": [{"name": "c", "image": "x", "ports": [
        {"containerPort": 80, "name": "8080"}]}]}, f"{C0}.ports[0].name", "letter"),
    ({"containers": [{"name": "c", "image": "x", "ports": [
        {"containerPort": 80, "name": "a--b"}]}]}, f"{C0}.ports[0].name", "consecutive"),
    ({"containers": [{"name": "c", "image": "x", "ports": [
        {"containerPort": 80, "name": "-ab"}]}]}, f"{C0}.ports[0].name", "hyphen"),
    ({"containers": [{"name": "c", "image": "x", "ports": [
        {"containerPort": 80, "containerport": 81}]}]},
     f"{C0}.ports[0].containerport", "unknown field"),
    ({"containers": [{"name": "c", "image": "x", "resources": {
        "limits": {"cpu": "lots"}}}]}, f"{C0}.resources.limits[cpu]", "quantities"),
    ({"containers": [{"name": "c", "image": "x", "resources": {
        "requests": {"memory": "-1Mi"}}}]}, f"{C0}.resources.requests[memory]",
     "greater than or equal to 0"),
    ({"containers": [{"name": "c", "image": "x", "resources": {
        "requests": {"cpu": "2"}, "limits": {"cpu": "1"}}}]},
     f"{C0}.resources.requests[cpu]", "less than or equal to cpu limit of 1"),
    ({"containers": [{"name": "c", "image": "x", "resources": {
        "requests": {"gpu": "1"}}}]}, f"{C0}.resources.requests[gpu]", "standard resource"),
    ({"containers": [{"name": "c", "image": "x", "resources": {"request": {}}}]},
     f"{C0}.resources.request", "unknown field"),
    ({"containers": [{"name": "c", "image": "x", "restartPolicy": "Always"}]},
     f"{C0}.restartPolicy", "non-init"),
    ({"restartPolicy": "Sometimes"}, "spec.restartPolicy", "Unsupported value"),
    ({"dnsPolicy": "None"}, "spec.dnsConfig", "dnsConfig"),
    ({"terminationGracePeriodSeconds": -1}, "spec.terminationGracePeriodSeconds",
     "greater than or equal to 0"),
    ({"nodeSelector": {"zone": 1}}, "spec.nodeSelector[zone]", "string"),
    ({"nodeSelector": ["zone"]}, "spec.nodeSelector", "object"),
    ({"nodeName": "Node_1"}, "spec.nodeName", "RFC 1123 subdomain"),
    ({"tolerations": [{"key": "k", "operator": "Equals"}]}, "spec.tolerations[0].operator",
     "Unsupported value"),
    ({"tolerations": [{"value": "v"}]}, "spec.tolerations[0].operator", "key"),
    ({"tolerations": [{"key": "k", "operator": "Exists", "value": "v"}]},
     "spec.tolerations[0].operator", "value must be empty"),
    ({"tolerations": [{"key": "k", "effect": "Sometimes"}]}, "spec.tolerations[0].effect",
     "Unsupported value"),
    ({"tolerations": [{"key": "k", "effect": "NoSchedule", "tolerationSeconds": 5}]},
     "spec.tolerations[0].effect", "NoExecute"),
    ({"hostNetwork": "yes"}, "spec.hostNetwork", "boolean"),
    ({"containerz": []}, "spec.containerz", "unknown field"),
])
def test_pod_errors(spec, field, fragment):
    err = error(pod(**spec), source="pods.yaml", index=2)
    assert err.field == field, str(err)
    assert fragment in err.message, str(err)
    assert err.source == "pods.yaml" and err.index == 2
    assert err.obj == "Pod default/web-0"
    assert str(err).startswith(f"pods.yaml: document 2: Pod default/web-0: field {field}: ")


def test_init_containers_share_name_space():
    err = error(pod(initContainers=[{"name": "c", "image": "x"}]))
    assert err.field == "spec.containers[0].name" and "Duplicate" in err.message
    out = normalize(pod(initContainers=[{"name": "init", "image": "x",
                                         "restartPolicy": "Always"}]), now=NOW)
    assert out["spec"]["initContainers"][0]["imagePullPolicy"] == "Always"
