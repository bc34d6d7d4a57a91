"""projectcalico.org/v3 IPPool defaulting and validation."""

import pytest

from orchestrator.api import normalize, normalize_all
from orchestrator.errors import ValidationError

NOW = "2026-01-02T03:04:05Z"


def pool(name="default-ipv4-ippool", **spec):
    return {"apiVersion": "projectcalico.org/v3", "kind": "IPPool",
            "metadata": {"name": name}, "spec": spec}


def test_ipv4_defaults_golden():
    out = normalize(pool(cidr="10.244.0.0/16"), now=NOW)
    assert out == {
        "apiVersion": "projectcalico.org/v3", "kind": "IPPool",
        "metadata": {"name": "default-ipv4-ippool", "creationTimestamp": NOW},
        "spec": {"cidr": "10.244.0.0/16", "blockSize": 26, "ipipMode": "Never",
                 "vxlanMode": "Never", "natOutgoing": False, "disabled": False,
                 "disableBGPExport": False, "nodeSelector": "all()",
                 "allowedUses": ["Workload", "Tunnel"]},
    }


def test_ipv6_defaults_and_normalized_cidr():
    out = normalize(pool(cidr="FD00:0:0:0::/48"), now=NOW)["spec"]
    assert out["cidr"] == "fd00::/48" and out["blockSize"] == 122


def test_explicit_values_kept():
    out = normalize(pool(cidr="192.168.0.0/16", blockSize=24, vxlanMode="CrossSubnet",
                         natOutgoing=True, nodeSelector="rack == 'a'",
                         allowedUses=["Workload"], disableBGPExport=True), now=NOW)["spec"]
    assert (out["blockSize"], out["vxlanMode"], out["ipipMode"], out["natOutgoing"],
            out["nodeSelector"], out["allowedUses"], out["disableBGPExport"]) == \
        (24, "CrossSubnet", "Never", True, "rack == 'a'", ["Workload"], True)


def test_block_size_edges_allowed():
    assert normalize(pool(cidr="10.0.0.0/20", blockSize=20), now=NOW)["spec"]["blockSize"] == 20
    assert normalize(pool(cidr="10.0.0.0/32", blockSize=32), now=NOW)["spec"]["blockSize"] == 32
    assert normalize(pool(cidr="fd00::/116", blockSize=116), now=NOW)["spec"]["blockSize"] == 116
    # A disabled pool may be smaller than a block (Calico only checks enabled pools).
    assert normalize(pool(cidr="10.0.0.0/28", disabled=True), now=NOW)["spec"]["disabled"]


@pytest.mark.parametrize("spec,field,fragment", [
    ({}, "spec.cidr", "IPPool CIDR must be specified"),
    ({"cidr": "10.0.0.0/33"}, "spec.cidr", "must be a valid subnet"),
    ({"cidr": "banana"}, "spec.cidr", "must be a valid subnet"),
    ({"cidr": "10.0.0.0"}, "spec.cidr", "must be a valid subnet"),
    ({"cidr": 10}, "spec.cidr", "string"),
    ({"cidr": "10.0.0.1/16"}, "spec.cidr", "not strictly masked"),
    ({"cidr": "fd00::1/64"}, "spec.cidr", "not strictly masked"),
    ({"cidr": "10.0.0.0/16", "blockSize": 19}, "spec.blockSize",
     "IPv4 block size must be between 20 and 32"),
    ({"cidr": "10.0.0.0/16", "blockSize": 33}, "spec.blockSize", "between 20 and 32"),
    ({"cidr": "fd00::/64", "blockSize": 115}, "spec.blockSize",
     "IPv6 block size must be between 116 and 128"),
    ({"cidr": "fd00::/64", "blockSize": 26}, "spec.blockSize", "between 116 and 128"),
    ({"cidr": "10.0.0.0/16", "blockSize": "26"}, "spec.blockSize", "integer"),
    ({"cidr": "10.0.0.0/28"}, "spec.cidr", "too small"),
    ({"cidr": "10.0.0.0/24", "blockSize": 23}, "spec.cidr", "too small"),
    ({"cidr": "10.0.0.0/22", "blockSize": 21}, "spec.cidr", "too small"),
    ({"cidr": "169.254.0.0/16"}, "spec.cidr", "Link Local range 169.254.0.0/16"),
    ({"cidr": "169.0.0.0/8"}, "spec.cidr", "Link Local"),
    ({"cidr": "fe80::/64"}, "spec.cidr", "Link Local range fe80::/10"),
    ({"cidr": "10.0.0.0/16", "ipipMode": "Sometimes"}, "spec.ipipMode", "Unsupported"),
    ({"cidr": "10.0.0.0/16", "vxlanMode": "always"}, "spec.vxlanMode", "Unsupported"),
    ({"cidr": "10.0.0.0/16", "ipipMode": "Always", "vxlanMode": "CrossSubnet"},
     "spec.vxlanMode", "Cannot enable both VXLAN and IPIP"),
    ({"cidr": "fd00::/48", "ipipMode": "Always"}, "spec.ipipMode", "IPv6"),
    ({"cidr": "10.0.0.0/16", "natOutgoing": "yes"}, "spec.natOutgoing", "boolean"),
    ({"cidr": "10.0.0.0/16", "disabled": 1}, "spec.disabled", "boolean"),
    ({"cidr": "10.0.0.0/16", "nodeSelector": "global()"}, "spec.nodeSelector", "global()"),
    ({"cidr": "10.0.0.0/16", "nodeSelector": "  "}, "spec.nodeSelector", "non-empty"),
    ({"cidr": "10.0.0.0/16", "allowedUses": ["Pods"]}, "spec.allowedUses[0]", "Unsupported"),
    ({"cidr": "10.0.0.0/16", "allowedUses": ["Workload", "Workload"]},
     "spec.allowedUses[1]", "Duplicate"),
    ({"cidr": "10.0.0.0/16", "allowedUses": ["LoadBalancer", "Tunnel"]},
     "spec.allowedUses", "LoadBalancer"),
    ({"cidr": "10.0.0.0/16", "ipip": {"enabled": True}}, "spec.ipip", "unknown field"),
])
def test_ippool_errors(spec, field, fragment):
    with pytest.raises(ValidationError) as exc:
        normalize(pool("p1", **spec), now=NOW, source="pools.yaml", index=0)
    err = exc.value
    assert err.field == field, str(err)
    assert fragment in err.message, str(err)
    assert (err.source, err.index, err.obj) == ("pools.yaml", 0, "IPPool p1")


def test_ippool_is_cluster_scoped():
    obj = pool(cidr="10.0.0.0/16")
    obj["metadata"]["namespace"] = "default"
    with pytest.raises(ValidationError) as exc:
        normalize(obj, now=NOW)
    assert exc.value.field == "metadata.namespace"


def test_overlapping_pools_in_one_apply():
    with pytest.raises(ValidationError) as exc:
        normalize_all([pool("a", cidr="10.0.0.0/16"), pool("b", cidr="10.1.0.0/16"),
                       pool("c", cidr="10.0.128.0/24")], now=NOW)
    err = exc.value
    assert err.index == 2 and err.field == "spec.cidr"
    assert "IPPool(c) CIDR overlaps with IPPool(a) CIDR 10.0.0.0/16" in err.message
    assert len(normalize_all([pool("a", cidr="10.0.0.0/16"), pool("b", cidr="fd00::/48")],
                             now=NOW)) == 2


def test_overlapping_ipv6_pools_refused():
    with pytest.raises(ValidationError) as exc:
        normalize_all([pool("a", cidr="fd00:10:244::/56"), pool("b", cidr="fd00:10:244:80::/64")],
                      now=NOW)
    assert exc.value.index == 1 and exc.value.field == "spec.cidr"
    assert "IPPool(b) CIDR overlaps with IPPool(a) CIDR fd00:10:244::/56" in exc.value.message
