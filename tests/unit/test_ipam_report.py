"""Golden text of `ipam show` / `ipam check` reports."""

import ipaddress

from orchestrator.ipam import IPAMState, Pool, assign_ip, auto_assign, check, show

POOLS = [Pool("default-ipv4-ippool", "10.244.0.0/24", 26),
         Pool("spare", "10.245.0.0/16", 26, disabled=True)]


def scenario():
    s = IPAMState()
    for handle, node, ns, pod in [("k8s-pod-network.1", "node-1", "default", "web-0"),
                                  ("k8s-pod-network.2", "node-1", "default", "web-1"),
                                  ("k8s-pod-network.3", "node-1", "x", "a"),
                                  ("k8s-pod-network.4", "node-2", "x", "b")]:
        s = auto_assign(s, handle, node, POOLS, {"namespace": ns, "pod": pod}).state
    # node-2 takes an address in node-1's block: a borrowed IP.
    s = assign_ip(s, "10.244.0.10", "k8s-pod-network.5", "node-2", POOLS,
                  {"namespace": "y", "pod": "c"}).state
    return s


def test_show_matches_calicoctl_documentation_example():
    """Rebuild the state behind calicoctl's documented `ipam show --show-blocks` output."""
    v4 = Pool("p4", "10.65.0.0/16", 26)
    v6 = Pool("p6", "fd5f:abcd:64::/48", 122)
    s = IPAMState()
    for i in range(5):
        s = assign_ip(s, f"10.65.79.{i}", f"h4-{i}", "n", [v4]).state
    base = ipaddress.ip_address("fd5f:abcd:64:4f2c:ec1b:27b9:1989:77c0")
    for i in range(7):
        s = assign_ip(s, str(base + i), f"h6-{i}", "n", [v6]).state
    assert show(s, [v4, v6]) == """\
+----------+-------------------+------------+------------+-------------------+
| GROUPING |       CIDR        | IPS TOTAL  | IPS IN USE |     IPS FREE      |
+----------+-------------------+------------+------------+-------------------+
| IP Pool  | 10.65.0.0/16      |      65536 | 5 (0%)     | 65531 (100%)      |
| IP Pool  | fd5f:abcd:64::/48 | 1.2089e+24 | 7 (0%)     | 1.2089e+24 (100%) |
+----------+-------------------+------------+------------+-------------------+
"""
    assert show(s, [v4, v6], show_blocks=True) == """\
+----------+-------------------------------------------+------------+------------+-------------------+
| GROUPING |                   CIDR                    | IPS TOTAL  | IPS IN USE |     IPS FREE      |
+----------+-------------------------------------------+------------+------------+-------------------+
| IP Pool  | 10.65.0.0/16                              |      65536 | 5 (0%)     | 65531 (100%)      |
| Block    | 10.65.79.0/26                             |         64 | 5 (8%)     | 59 (92%)          |
| IP Pool  | fd5f:abcd:64::/48                         | 1.2089e+24 | 7 (0%)     | 1.2089e+24 (100%) |
| Block    | fd5f:abcd:64:4f2c:ec1b:27b9:1989:77c0/122 |         64 | 7 (11%)    | 57 (89%)          |
+----------+-------------------------------------------+------------+------------+-------------------+
"""


def test_show_tables():
    s = scenario()
    assert show(s, POOLS, show_blocks=True) == """\
+----------+----------------+-----------+------------+--------------+
| GROUPING |      CIDR      | IPS TOTAL | IPS IN USE |   IPS FREE   |
+----------+----------------+-----------+------------+--------------+
| IP Pool  | 10.244.0.0/24  |       256 | 5 (2%)     | 251 (98%)    |
| Block    | 10.244.0.0/26  |        64 | 4 (6%)     | 60 (94%)     |
| Block    | 10.244.0.64/26 |        64 | 1 (2%)     | 63 (98%)     |
| IP Pool  | 10.245.0.0/16  |     65536 | 0 (0%)     | 65536 (100%) |
+----------+----------------+-----------+------------+--------------+
"""
    assert show(s, POOLS, show_borrowed=True) == """\
+-------------+----------------+---------------+-------------+------+--------------+
|     IP      | BORROWING-NODE |     BLOCK     | BLOCK OWNER | TYPE | ALLOCATED-TO |
+-------------+----------------+---------------+-------------+------+--------------+
| 10.244.0.10 | node-2         | 10.244.0.0/26 | node-1      | pod  | y/c          |
+-------------+----------------+---------------+-------------+------+--------------+
"""
    assert show(s, POOLS, show_config=True) == """\
+--------------------+-------+
|      PROPERTY      | VALUE |
+--------------------+-------+
| StrictAffinity     | false |
| AutoAllocateBlocks | true  |
| MaxBlocksPerHost   | 0     |
+--------------------+-------+
"""


def test_show_ip():
    s = scenario()
    assert show(s, POOLS, ip="10.244.0.10") == (
        "IP 10.244.0.10 is in use\nAttributes:\n  pod: c\n  namespace: y\n  node: node-2\n")
    assert show(s, POOLS, ip="10.244.0.99") == "IP 10.244.0.99 is not currently assigned\n"


def test_show_lists_blocks_of_a_deleted_pool_without_a_pool_row():
    s = scenario()
    text = show(s, [POOLS[1]], show_blocks=True)
    assert "| Block    | 10.244.0.0/26  |        64 | 4 (6%)     | 60 (94%)     |" in text
    assert "10.244.0.0/24" not in text


CHECK_GOLDEN = """\
Checking IPAM for inconsistencies...

Loading all IPAM blocks...
Found 2 IPAM blocks.
 IPAM block 10.244.0.0/26 affinity=host:node-1:
 IPAM block 10.244.0.64/26 affinity=host:node-2:
IPAM blocks record 5 allocations.

Loading all IPAM pools...
  10.244.0.0/24
Found 1 active IP pools.

Loading all nodes.
Found 0 node tunnel IPs.

Loading all workload endpoints.
Found 7 workload IPs.
Workloads and nodes are using 6 IPs.

Loading all handles
Looking for top (up to 20) nodes by allocations...
  node-1 has 3 allocations
  node-2 has 2 allocations
Node with most allocations has 3; median is 2

Scanning for IPs that are allocated but not actually in use...
  10.244.0.2 leaked; attrs Main:k8s-pod-network.3 Extra:namespace=x,node=node-1,pod=a
Found 1 IPs that are allocated in IPAM but not actually in use.
Scanning for IPs that are in use by a workload or node but not allocated in IPAM...
  10.244.0.64 has multiple owners.
  10.244.0.200 in use by Workload(x/ghost) and in active IPAM pool but has no IPAM allocation.
  192.168.1.5 in use by Workload(x/hostnet) is not in any active IP pool.
Found 1 in-use IPs that are not in active IP pools.
Found 1 in-use IPs that are in active IP pools but have no corresponding IPAM allocation.

Scanning for IPAM handles with no matching IPs...
  k8s-pod-network.orphan doesn't have any active IPs.
Found 1 handles with no matching IPs (and 5 handles with matches).
Scanning for IPs with missing handle...
Found 0 handles mentioned in blocks with no matching handle resource.
Validating IPAMBlock structures...
Found 0 invalid IPAMBlocks.
Check complete; found 4 problems.
"""

IN_USE = {"10.244.0.0": "default/web-0", "10.244.0.1": "default/web-1",
          "10.244.0.64": ["x/b", "x/b2"], "10.244.0.200": "x/ghost",
          "192.168.1.5": "x/hostnet", "10.244.0.10": "y/c"}


def test_check_golden():
    s = scenario()
    s.handles["k8s-pod-network.orphan"] = {"10.244.0.0/26": 1}
    text, problems = check(s, POOLS, IN_USE, show_problem_ips=True)
    assert text == CHECK_GOLDEN
    assert problems == 4


def test_check_clean_state_has_no_problems_and_quiet_mode_omits_details():
    s = scenario()
    in_use = {"10.244.0.0": "default/web-0", "10.244.0.1": "default/web-1",
              "10.244.0.2": "x/a", "10.244.0.64": "x/b", "10.244.0.10": "y/c"}
    text, problems = check(s, POOLS, in_use, tunnel_ips={})
    assert problems == 0
    assert text.endswith("Check complete; found 0 problems.\n")
    text, problems = check(s, POOLS, IN_USE)
    assert problems == 3 and "leaked; attrs" not in text


def test_check_counts_missing_handles_tunnels_and_invalid_blocks():
    s = scenario()
    del s.handles["k8s-pod-network.5"]
    in_use = {"10.244.0.0": "default/web-0", "10.244.0.1": "default/web-1",
              "10.244.0.2": "x/a", "10.244.0.64": "x/b", "10.244.0.10": "y/c"}
    text, problems = check(s, POOLS, in_use, tunnel_ips={"10.244.0.1": "node-1"},
                           invalid_blocks={"10.244.0.128/26": "ordinal 3 appears more than "
                                           "once in Unallocated array"})
    assert "Found 1 node tunnel IPs." in text
    assert "Workloads and nodes are using 5 IPs." in text
    assert "Found 1 handles mentioned in blocks with no matching handle resource." in text
    assert ("  IPAMBlock 10.244.0.128/26 is invalid: ordinal 3 appears more than once in "
            "Unallocated array") in text
    assert "Found 1 invalid IPAMBlocks." in text
    # Missing handle resources are reported but, as in calicoctl, not counted as problems.
    assert problems == 1
