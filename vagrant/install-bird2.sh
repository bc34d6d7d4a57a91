#!/usr/bin/env bash
# Install Debian's bird2 (pinned version $1 when the archive has it) WITHOUT its service.
#
# calinet runs its own BIRD instances, one per fabric router, inside the routers' network
# namespaces (topologies/routers.py). The package's own service would start a BIRD in the
# machine's root namespace with /etc/bird/bird.conf, which calinet neither needs nor may
# touch, so the install runs with a policy-rc.d that refuses service starts (the standard
# Debian mechanism, as in container images), and on systemd machines the unit is left
# disabled. An existing policy-rc.d is left as it is.
set -euo pipefail
want="${1:?usage: install-bird2.sh VERSION}"
if [ "$(id -u)" != 0 ]; then echo "calinet setup: run as root to install bird2 (sudo make setup)"; exit 1; fi
export DEBIAN_FRONTEND=noninteractive
pkg=bird2
if apt-cache madison bird2 2>/dev/null | grep -q " $want "; then
	pkg="bird2=$want"
else
	apt-get update -qq
	if apt-cache madison bird2 2>/dev/null | grep -q " $want "; then
		pkg="bird2=$want"
	else
		echo "calinet setup: bird2 $want is not in this release's archive; installing its bird2" \
			"($(apt-cache policy bird2 | awk '/Candidate/ {print $2}'))"
	fi
fi
guard=""
if [ ! -e /usr/sbin/policy-rc.d ]; then
	printf '#!/bin/sh\n# calinet setup: no service starts while bird2 installs\nexit 101\n' \
		> /usr/sbin/policy-rc.d
	chmod 755 /usr/sbin/policy-rc.d
	guard=/usr/sbin/policy-rc.d
	trap 'rm -f "$guard"' EXIT
fi
echo "calinet setup: installing $pkg (fabric routers; its root-namespace service stays off)"
apt-get install -y -qq --no-install-recommends "$pkg"
if [ -d /run/systemd/system ]; then
	systemctl disable --now bird.service >/dev/null 2>&1 || true
fi
