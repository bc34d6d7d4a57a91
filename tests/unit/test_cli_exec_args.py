"""`calinet` argument parsing: flags anywhere before `--`, the command after it verbatim (as
kubectl), and exec's environment/wrapper. Pure: no root, no testbed."""

import pytest

from orchestrator.cli.main import parse_args
from orchestrator.node.containers import BASE_ENV, exec_argv, exec_environment


@pytest.mark.parametrize("argv", [
    ["exec", "test", "-n", "dev", "--", "wget", "-qO-", "http://web.default"],
    ["exec", "-n", "dev", "test", "--", "wget", "-qO-", "http://web.default"],
    ["exec", "--namespace=dev", "test", "--", "wget", "-qO-", "http://web.default"],
    ["exec", "test", "--namespace", "dev", "--", "wget", "-qO-", "http://web.default"],
])
def test_exec_flags_anywhere_before_dashdash(argv):
    a = parse_args(argv)
    assert (a.verb, a.pod, a.namespace) == ("exec", "test", "dev")
    assert a.argv == ["wget", "-qO-", "http://web.default"]


def test_exec_after_dashdash_is_verbatim():
    a = parse_args(["exec", "test", "--", "sh", "-c", "echo -n x", "-n", "dev", "--", "y"])
    assert a.namespace == "default"
    assert a.argv == ["sh", "-c", "echo -n x", "-n", "dev", "--", "y"]


def test_exec_container_flag_and_global_state_dir():
    a = parse_args(["--state-dir", "/tmp/x", "exec", "-c", "app", "web", "-n", "prod", "--",
                    "env"])
    assert (a.state_dir, a.container, a.pod, a.namespace, a.argv) == (
        "/tmp/x", "app", "web", "prod", ["env"])


def test_exec_without_dashdash_still_takes_a_plain_command():
    a = parse_args(["exec", "test", "hostname"])
    assert (a.pod, a.argv) == ("test", ["hostname"])


@pytest.mark.parametrize("argv,expect", [
    (["logs", "-n", "dev", "test"], ("test", "dev")),
    (["logs", "test", "-n", "dev", "-p"], ("test", "dev")),
    (["describe", "pod", "-n", "dev", "test"], ("test", "dev")),
    (["describe", "-n", "dev", "pod", "test"], ("test", "dev")),
    (["get", "pods", "-n", "dev", "test"], ("test", "dev")),
    (["get", "-n", "dev", "pods", "test", "-o", "wide"], ("test", "dev")),
])
def test_other_verbs_take_flags_anywhere(argv, expect):
    a = parse_args(argv)
    name = getattr(a, "pod", None) or getattr(a, "name", None)
    assert (name, a.namespace) == expect


def test_dashdash_only_split_for_exec():
    a = parse_args(["get", "pods", "-n", "dev"])
    assert a.namespace == "dev"


def test_up_detach_and_down():
    a = parse_args(["up", "topo.yaml", "--detach"])
    assert a.detach and not a.serve
    assert parse_args(["down"]).verb == "down"


POD = {"metadata": {"name": "test", "namespace": "dev"},
       "status": {"podIP": "10.244.1.5", "hostIP": "10.0.0.2"},
       "spec": {"containers": [{"name": "c", "image": "alpine", "command": ["sleep", "3600"],
                                "env": [{"name": "GREETING", "value": "hi"},
                                        {"name": "MY_IP", "valueFrom": {
                                            "fieldRef": {"fieldPath": "status.podIP"}}}]}]}}


def test_exec_environment_is_the_containers():
    env = exec_environment(POD)
    assert env["GREETING"] == "hi" and env["MY_IP"] == "10.244.1.5"
    assert env["HOSTNAME"] == "test" and env["PATH"] == BASE_ENV["PATH"]


def test_exec_argv_clears_env_and_mounts_resolv_conf():
    argv = exec_argv(["wget", "x"], {"A": "1"}, "/state/pods/dev/test/resolv.conf")
    assert argv[:3] == ["unshare", "--mount", "--propagation"]
    assert "/state/pods/dev/test/resolv.conf" in argv
    assert argv[-5:] == ["env", "-i", "A=1", "wget", "x"]
    assert exec_argv(["id"], {}, None) == ["env", "-i", "id"]


def test_exec_in_a_container_the_pod_does_not_have_names_it():
    from orchestrator.errors import NotFound
    with pytest.raises(NotFound, match="container 'nope' is not in the pod"):
        exec_environment(POD, "nope")
