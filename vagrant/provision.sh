#!/usr/bin/env bash
# Vagrant provisioner: the same setup `make setup` does on any Debian/Ubuntu machine.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends make git
cd /calinet
make setup
# The VM's kernel has what the CI machine lacks (OVS datapath, netem, IPIP, SCTP); load them
# so calinet's feature detection reports them available.
for m in openvswitch sch_netem ipip sctp ip_set xt_set; do modprobe "$m" 2>/dev/null || true; done
echo "calinet: provisioned. Try: cd /calinet && sudo make demo"
