"""orchestrator.images.resolve: image names, command/args semantics, built-in programs, errors."""

from __future__ import annotations

import sys

import pytest

from orchestrator.errors import ValidationError
from orchestrator.images import ImageError, expand, image_name, resolve
from orchestrator.images.programs import AGNHOST, HTTP_SERVER


def pod(*containers, name="web-0", ns="default", **spec):
    return {"metadata": {"name": name, "namespace": ns, "uid": "u-1", "labels": {"app": "web"}},
            "spec": {"containers": list(containers), **spec},
            "status": {"podIP": "10.244.1.5", "hostIP": "10.0.0.1"}}


def run(container, **kw):
    return resolve(container, pod(container, **kw))


def ports_of(program):
    argv = program.argv
    return [argv[i + 1] for i, a in enumerate(argv) if a == "--port"]


@pytest.mark.parametrize("ref,name", [
    ("registry.k8s.io/e2e-test-images/agnhost:2.45", "agnhost"),
    ("agnhost", "agnhost"),
    ("docker.io/library/nginx:1.25-alpine", "nginx"),
    ("networkstatic/iperf3", "iperf3"),
    ("localhost:5000/busybox", "busybox"),
    ("localhost:5000/team/busybox:1.36", "busybox"),
    ("nginx@sha256:0123abcd", "nginx"),
    ("gcr.io/x/Alpine:3.19@sha256:ff", "alpine"),
])
def test_image_name(ref, name):
    assert image_name(ref) == name


@pytest.mark.parametrize("text,want", [
    ("$(A)-$(B)", "a-b"),
    ("$(MISSING)", "$(MISSING)"),
    ("$$(A)", "$(A)"),
    ("cost $5", "cost $5"),
    ("$(A", "$(A"),
    ("end$", "end$"),
    ("$$", "$"),
])
def test_expand(text, want):
    assert expand(text, {"A": "a", "B": "b"}) == want


def test_command_replaces_entrypoint_and_drops_cmd():
    p = run({"name": "c", "image": "busybox", "command": ["sleep", "3600"]})
    assert p.argv == ["sleep", "3600"]
    assert p.ready_socket is None


def test_command_and_args_concatenate():
    p = run({"name": "c", "image": "busybox", "command": ["sh", "-c"], "args": ["echo hi"]})
    assert p.argv == ["sh", "-c", "echo hi"]


def test_args_replace_cmd_keep_entrypoint():
    p = run({"name": "c", "image": "networkstatic/iperf3", "args": ["-s", "-p", "5999"]})
    assert p.argv == ["iperf3", "-s", "-p", "5999"]
    assert p.ready_socket == ("TCP", 5999)


def test_image_default_cmd_runs_without_command():
    assert run({"name": "c", "image": "busybox"}).argv == ["sh"]
    assert run({"name": "c", "image": "ubuntu:22.04"}).argv == ["bash"]


def test_iperf3_default_uses_first_tcp_port():
    p = run({"name": "c", "image": "iperf3",
             "ports": [{"containerPort": 7000, "protocol": "UDP"}, {"containerPort": 5300}]})
    assert p.argv == ["iperf3", "-s", "-p", "5300"]
    assert run({"name": "c", "image": "iperf3"}).argv == ["iperf3", "-s", "-p", "5201"]
    assert run({"name": "c", "image": "iperf3", "args": ["-s", "--port=6000"]}).ready_socket \
        == ("TCP", 6000)
    assert run({"name": "c", "image": "iperf3", "args": ["-c", "10.0.0.1"]}).ready_socket is None


def test_agnhost_without_args_serves_every_container_port():
    p = run({"name": "c", "image": "registry.k8s.io/e2e-test-images/agnhost:2.45",
             "ports": [{"containerPort": 80, "name": "http"},
                       {"containerPort": 81, "protocol": "UDP"},
                       {"containerPort": 82, "protocol": "SCTP"}]})
    assert p.argv[:4] == [sys.executable, "-S", "-E", AGNHOST]
    assert p.argv[4:6] == ["--hostname", "web-0"]
    assert ports_of(p) == ["80/TCP", "81/UDP", "82/SCTP"]
    assert p.ready_socket == ("TCP", 80)
    assert p.env["HOSTNAME"] == "web-0"


def test_agnhost_udp_only_is_ready_on_udp():
    p = run({"name": "c", "image": "agnhost", "ports": [{"containerPort": 53, "protocol": "UDP"}]})
    assert p.ready_socket == ("UDP", 53)


def test_agnhost_netexec_flags():
    p = run({"name": "c", "image": "agnhost",
             "args": ["netexec", "--http-port=8080", "--udp-port", "8081", "--sctp-port=8082"],
             "ports": [{"containerPort": 9999}]})
    assert ports_of(p) == ["8080/TCP", "8081/UDP", "8082/SCTP"]
    p = run({"name": "c", "image": "agnhost", "args": ["netexec"]})
    assert ports_of(p) == ["8080/TCP", "8081/UDP"]
    p = run({"name": "c", "image": "agnhost", "args": ["netexec", "--udp-port=-1"]})
    assert ports_of(p) == ["8080/TCP"]


def test_agnhost_via_command():
    p = run({"name": "c", "image": "agnhost", "command": ["/agnhost", "netexec"],
             "args": ["--http-port=9000"]})
    assert ports_of(p) == ["9000/TCP", "8081/UDP"]


def test_agnhost_serve_hostname_and_pause():
    p = run({"name": "c", "image": "agnhost", "args": ["serve-hostname"]})
    assert ports_of(p) == ["9376/TCP/reply=web-0"]
    p = run({"name": "c", "image": "agnhost",
             "args": ["serve-hostname", "--tcp", "--udp", "--port=9000"]})
    assert ports_of(p) == ["9000/TCP/hostname", "9000/UDP/hostname"]
    p = run({"name": "c", "image": "agnhost", "args": ["pause"],
             "ports": [{"containerPort": 80}]})
    assert ports_of(p) == [] and p.ready_socket is None


def test_agnhost_porter_reads_env():
    p = run({"name": "c", "image": "agnhost", "args": ["porter"],
             "env": [{"name": "SERVE_PORT_8080", "value": "foo/bar"},
                     {"name": "SERVE_SCTP_PORT_9090", "value": "x"},
                     {"name": "OTHER", "value": "1"}]})
    assert ports_of(p) == ["8080/TCP/reply=foo/bar", "9090/SCTP"]


def test_old_single_purpose_images():
    assert ports_of(run({"name": "c", "image": "gcr.io/kubernetes-e2e-test-images/netexec:1.1",
                         "args": ["--http-port=8080", "--udp-port=-1"]})) == ["8080/TCP"]
    assert ports_of(run({"name": "c", "image": "serve-hostname"})) == ["9376/TCP/reply=web-0"]


def test_agnhost_other_subcommand_serves_ports():
    p = run({"name": "c", "image": "agnhost", "args": ["test-webserver"],
             "ports": [{"containerPort": 80}]})
    assert ports_of(p) == ["80/TCP"]


def test_nginx_like_images_use_http_server():
    for ref in ("nginx", "nginx:1.25", "nginxinc/nginx-unprivileged:stable", "httpd:2.4"):
        p = run({"name": "c", "image": ref})
        assert p.argv[3] == HTTP_SERVER, ref
        assert ports_of(p) == ["80"]
    p = run({"name": "c", "image": "nginx", "ports": [{"containerPort": 8080},
                                                     {"containerPort": 53, "protocol": "UDP"}]})
    assert ports_of(p) == ["8080"] and p.ready_socket == ("TCP", 8080)
    # Through nginx's entrypoint script, a non-nginx command runs as given.
    assert run({"name": "c", "image": "nginx", "args": ["sleep", "5"]}).argv == ["sleep", "5"]


def test_hostname_prefers_spec_hostname():
    c = {"name": "c", "image": "agnhost"}
    p = resolve(c, pod(c, hostname="custom"))
    assert p.argv[p.argv.index("--hostname") + 1] == "custom"
    assert p.env["HOSTNAME"] == "custom"


def test_env_values_fieldrefs_and_expansion():
    c = {"name": "c", "image": "busybox", "command": ["echo", "$(POD_IP)", "$$(POD_IP)"],
         "env": [{"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
                 {"name": "NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                 {"name": "APP", "valueFrom": {"fieldRef":
                                               {"fieldPath": "metadata.labels['app']"}}},
                 {"name": "GREETING", "value": "hi $(NAME) $(LATER)"},
                 {"name": "LATER", "value": "x"}]}
    p = run(c)
    assert p.argv == ["echo", "10.244.1.5", "$(POD_IP)"]
    assert p.env["NAME"] == "web-0" and p.env["APP"] == "web"
    # Only earlier variables expand inside env values.
    assert p.env["GREETING"] == "hi web-0 $(LATER)"


def test_unknown_image_without_command_fails_like_an_image_pull():
    with pytest.raises(ImageError) as err:
        run({"name": "app", "image": "example.com/team/webapp:v3"})
    e = err.value
    assert e.reason == "ErrImagePull"
    assert "example.com/team/webapp:v3" in str(e) and "built-in images: agnhost" in str(e)
    assert e.field == "spec.containers[0].image" and "container app" in e.obj
    # args alone cannot run either: we do not know that image's ENTRYPOINT.
    with pytest.raises(ImageError):
        run({"name": "app", "image": "webapp", "args": ["sleep", "1"]})


def test_unknown_image_with_command_runs_it():
    assert run({"name": "c", "image": "webapp", "command": ["sleep", "1"]}).argv == ["sleep", "1"]


@pytest.mark.parametrize("container,field,reason", [
    ({"name": "c"}, "spec.containers[0].image", "InvalidImageName"),
    ({"name": "c", "image": "agnhost", "args": ["netexec", "--tls-cert-file=x"]},
     "spec.containers[0].args", "CreateContainerError"),
    ({"name": "c", "image": "agnhost", "args": ["netexec", "--http-port=0"]},
     "spec.containers[0].args", "CreateContainerError"),
    ({"name": "c", "image": "agnhost", "args": ["netexec", "--http-port=abc"]},
     "spec.containers[0].args", "CreateContainerError"),
    ({"name": "c", "image": "agnhost", "args": ["netexec", "--http-port"]},
     "spec.containers[0].args", "CreateContainerError"),
    ({"name": "c", "image": "agnhost", "args": ["serve-hostname", "--tcp=maybe"]},
     "spec.containers[0].args", "CreateContainerError"),
    ({"name": "c", "image": "agnhost", "args": ["porter"]},
     "spec.containers[0].env", "CreateContainerError"),
    ({"name": "c", "image": "agnhost", "args": ["porter"],
      "env": [{"name": "SERVE_TLS_PORT_443", "value": "x"}]},
     "spec.containers[0].env", "CreateContainerError"),
    ({"name": "c", "image": "busybox", "command": ["x"],
      "env": [{"name": "A", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}]},
     "spec.containers[0].env[0].valueFrom", "CreateContainerConfigError"),
    ({"name": "c", "image": "busybox", "command": ["x"],
      "env": [{"name": "A", "valueFrom": {"fieldRef": {"fieldPath": "spec.nope"}}}]},
     "spec.containers[0].env[0].valueFrom.fieldRef.fieldPath", "CreateContainerConfigError"),
    ({"name": "c", "image": "busybox", "command": ["x"], "envFrom": [{"configMapRef": {}}]},
     "spec.containers[0].envFrom", "CreateContainerConfigError"),
])
def test_image_errors_name_the_field(container, field, reason):
    with pytest.raises(ImageError) as err:
        run(container)
    assert err.value.field == field
    assert err.value.reason == reason
    assert "Pod default/web-0 container c" in str(err.value)


@pytest.mark.parametrize("container,field", [
    ({"name": "c", "image": "busybox", "command": "sleep 1"}, "spec.containers[0].command"),
    ({"name": "c", "image": "busybox", "args": ["a", 1]}, "spec.containers[0].args"),
    ({"name": "c", "image": "agnhost", "ports": [{"containerPort": 70000}]},
     "spec.containers[0].ports[0].containerPort"),
    ({"name": "c", "image": "agnhost", "ports": [{"containerPort": 80, "protocol": "ICMP"}]},
     "spec.containers[0].ports[0].protocol"),
    ({"name": "c", "image": "busybox", "env": [{"value": "x"}]}, "spec.containers[0].env[0].name"),
    ({"name": "c", "image": "busybox", "env": [{"name": "A", "value": 3}]},
     "spec.containers[0].env[0].value"),
])
def test_malformed_container_is_a_validation_error(container, field):
    with pytest.raises(ValidationError) as err:
        run(container)
    assert err.value.field == field


def test_second_container_index_in_field():
    a = {"name": "a", "image": "busybox", "command": ["true"]}
    b = {"name": "b", "image": "mystery"}
    with pytest.raises(ImageError) as err:
        resolve(b, pod(a, b))
    assert err.value.field == "spec.containers[1].image"


def test_duplicate_ports_are_served_once():
    p = run({"name": "c", "image": "agnhost",
             "ports": [{"containerPort": 80, "name": "a"}, {"containerPort": 80, "name": "b"}]})
    assert ports_of(p) == ["80/TCP"]
