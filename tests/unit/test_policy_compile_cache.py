"""policy.compile_cache: compiling through one long-lived cache gives exactly a fresh compile.

Randomised sequences of what happens to a cluster between passes (pods added, deleted,
relabelled, given an address; namespace labels changed; policies added, changed, deleted;
a node not compiled for a few passes), each pass compiled for two nodes through one shared
cache and compared with compiling from scratch. Plus checks that the cache is really used:
a new pod evaluates its own selectors and chains only.
"""

from __future__ import annotations

import random

import pytest

from policy.compile_cache import CompileCache
from policy.compiler import compile_node, endpoint
from policy.model import from_calico, from_k8s

APPS, TIERS = ("a", "b", "c", "d"), ("web", "db")
NODES = ("n1", "n2", "n3")


def k8s(name, ns, selector, peer, port):
    return from_k8s({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
                     "metadata": {"name": name, "namespace": ns},
                     "spec": {"podSelector": selector, "policyTypes": ["Ingress", "Egress"],
                              "ingress": [{"from": [peer], "ports": [port]}],
                              "egress": [{"to": [peer]}]}})


def random_policy(rnd: random.Random, k: int):
    ns = rnd.choice(("x", "y"))
    peers = [{"podSelector": {"matchLabels": {"app": rnd.choice(APPS)}}},
             {"namespaceSelector": {"matchLabels": {"team": rnd.choice("ab")}}},
             {"namespaceSelector": {"matchLabels": {"team": rnd.choice("ab")}},
              "podSelector": {"matchExpressions": [{"key": "tier", "operator": "NotIn",
                                                    "values": [rnd.choice(TIERS)]}]}},
             {"ipBlock": {"cidr": "10.0.0.0/8", "except": ["10.244.1.0/24"]}}]
    ports = [{"port": "http"}, {"protocol": "TCP", "port": 80 + k % 3},
             {"protocol": "UDP", "port": "dns"}]
    selectors = [{}, {"matchLabels": {"tier": rnd.choice(TIERS)}},
                 {"matchExpressions": [{"key": "app", "operator": "In",
                                        "values": list(rnd.sample(APPS, 2))}]}]
    if rnd.random() < 0.2:
        return from_calico({"apiVersion": "projectcalico.org/v3", "kind": "GlobalNetworkPolicy",
                            "metadata": {"name": f"g{k}"},
                            "spec": {"order": rnd.choice((10, 500, 2000)),
                                     "selector": f"tier == '{rnd.choice(TIERS)}'",
                                     "namespaceSelector": f"team == '{rnd.choice('ab')}'",
                                     "ingress": [{"action": rnd.choice(("Allow", "Deny")),
                                                  "source": {"selector": "has(app)"}}]}})
    return k8s(f"p{k}", ns, rnd.choice(selectors), rnd.choice(peers), rnd.choice(ports))


def random_pod(rnd: random.Random, i: int, with_ip: bool = True):
    tier = rnd.choice(TIERS)
    ports = [("http", "tcp", 8080 if tier == "web" else 8000), ("dns", "udp", 53)]
    return endpoint(rnd.choice("xyz"), f"p{i}", rnd.choice(NODES), f"cali{i:011d}",
                    f"10.244.{i % 3}.{i + 2}" if with_ip else "",
                    {"app": rnd.choice(APPS), "tier": tier}, rnd.sample(ports, rnd.randint(0, 2)))


def relabel(rnd: random.Random, ep):
    return endpoint(ep.namespace, ep.name, ep.node, ep.iface, ep.ip or f"10.244.9.{len(ep.name)}",
                    {**dict(ep.labels), "app": rnd.choice(APPS)}, ep.ports)


@pytest.mark.parametrize("seed", range(12))
def test_random_histories_compile_through_the_cache_as_from_scratch(seed):
    rnd = random.Random(seed)
    eps = [random_pod(rnd, i) for i in range(12)]
    pols = [random_policy(rnd, k) for k in range(6)]
    nss = {"x": {"team": "a"}, "y": {"team": "b"}, "z": {"team": "a"}}
    cache, nxt = CompileCache(), 100
    for step in range(40):
        event = rnd.randrange(8)
        if event == 0:
            eps.append(random_pod(rnd, nxt, with_ip=rnd.random() < 0.8))
            nxt += 1
        elif event == 1 and eps:
            eps.pop(rnd.randrange(len(eps)))
        elif event == 2 and eps:
            j = rnd.randrange(len(eps))
            eps[j] = relabel(rnd, eps[j])
        elif event == 3:
            nss = {**nss, rnd.choice("xyz"): {"team": rnd.choice("ab")}}
        elif event == 4:
            pols.append(random_policy(rnd, nxt))
            nxt += 1
        elif event == 5 and pols:
            pols.pop(rnd.randrange(len(pols)))
        elif event == 6 and pols:
            j = rnd.randrange(len(pols))
            pols[j] = random_policy(rnd, j)
        # event 7: nothing changed (a pass caused by something else)
        memo: dict = {}
        # Sometimes a node is not compiled in a pass: its sets fall behind by more than one
        # endpoint change and must be rebuilt, not patched.
        for node in [n for n in NODES if rnd.random() < 0.7] or ["n1"]:
            got = compile_node(node, list(eps), nss, list(pols), memo=memo, cache=cache)
            assert got == compile_node(node, list(eps), nss, list(pols)), \
                f"seed {seed} step {step} event {event} node {node}"
    assert cache.stats["set_updates"] > 0


def test_a_new_pod_evaluates_only_its_own_selectors_and_chains():
    rnd = random.Random(7)
    eps = [random_pod(rnd, i) for i in range(30)]
    pols = [random_policy(rnd, k) for k in range(20)]
    nss = {"x": {"team": "a"}, "y": {"team": "b"}, "z": {"team": "a"}}
    cache = CompileCache()
    for node in NODES:
        compile_node(node, eps, nss, pols, cache=cache)
    built = dict(cache.stats)
    new = endpoint("x", "new", "n1", "calinew0000000", "10.244.7.7", {"app": "a", "tier": "web"},
                   [("http", "tcp", 8080)])
    for node in NODES:
        compile_node(node, eps + [new], nss, pols, cache=cache)
    # Two endpoint chains (its ingress and egress), no set rebuilt from all endpoints.
    assert cache.stats["endpoint_chains"] - built["endpoint_chains"] == 2
    assert cache.stats["set_builds"] == built["set_builds"]
    assert cache.stats["set_updates"] > built["set_updates"]


def test_a_changed_policy_list_or_namespace_label_recompiles_endpoint_chains():
    rnd = random.Random(3)
    eps = [random_pod(rnd, i) for i in range(10)]
    pols = [random_policy(rnd, k) for k in range(5)]
    nss = {"x": {"team": "a"}, "y": {"team": "b"}, "z": {"team": "a"}}
    cache = CompileCache()
    compile_node("n1", eps, nss, pols, cache=cache)
    assert cache.endpoint_chains
    compile_node("n1", eps, nss, pols[1:], cache=cache)
    assert all(p is not pols[0] for p, _d in cache.policy_chains)   # the deleted one's chains go
    n = cache.stats["endpoint_chains"]
    compile_node("n1", eps, {**nss, "x": {"team": "b"}}, pols[1:], cache=cache)
    assert cache.stats["endpoint_chains"] > n
