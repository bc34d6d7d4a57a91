# calinet: `sudo make demo` and `sudo make test` are all a new user needs (README).
# Everything the project needs is installed from here: Debian packages below, Python packages
# pinned in setup.cfg and constraints.txt, into .venv (which sees Debian's mininet).

SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.calinet-setup
# Debian 12 / Ubuntu 24.04 package names. Versions come from the distribution release
# (Debian stable does not move them); Python packages are pinned exactly.
APT_PACKAGES := mininet iproute2 iptables ipset conntrack iputils-ping iperf3 tcpdump \
	bridge-utils openvswitch-switch net-tools procps psmisc kmod util-linux \
	python3 python3-venv python3-pip python3-dev gcc \
	chromium chromium-driver
# Commands whose absence means the apt step must run.
# chromedriver (with chromium) opens the HTML report in the browser test and `screenshot()`.
NEEDED_CMDS := mnexec ip iptables ipset conntrack ping iperf3 tcpdump brctl ifconfig nsenter \
	chromedriver
# The fabric's routers (ToR, spine, WAN) run BIRD 2, the daemon Calico itself uses, one
# instance per router namespace started by the testbed. Pinned: Debian 12's build; another
# release's bird2 is used with a notice (its 2.x config language is the same).
BIRD2_VERSION := 2.0.12-7

.PHONY: setup demo test test-unit bench lint clean help

help:
	@echo "sudo make demo   install what is missing, run the quickstart experiment (3 nodes, web app, matrix, iperf3; report.html)"
	@echo "sudo make test   install what is missing, run the whole test suite"
	@echo "make setup | bench | lint | clean"

setup: $(STAMP)

$(STAMP): setup.cfg constraints.txt Makefile
	@missing=""; for c in $(NEEDED_CMDS); do command -v $$c >/dev/null 2>&1 || missing="$$missing $$c"; done; \
	if ! /usr/bin/python3 -c 'import mininet.net, venv, ensurepip' >/dev/null 2>&1; then missing="$$missing python3-mininet/venv"; fi; \
	if [ -n "$$missing" ]; then \
		echo "calinet setup: installing Debian packages (missing:$$missing)"; \
		if [ "$$(id -u)" != 0 ]; then echo "calinet setup: run as root (sudo make setup)"; exit 1; fi; \
		export DEBIAN_FRONTEND=noninteractive; \
		apt-get update -qq && apt-get install -y -qq --no-install-recommends $(APT_PACKAGES); \
	fi
	@command -v bird >/dev/null 2>&1 && command -v birdc >/dev/null 2>&1 || \
		bash vagrant/install-bird2.sh $(BIRD2_VERSION)
	@# Mininet's Debian package installs into the system Python, so the venv must see it.
	@test -x $(PY) || /usr/bin/python3 -m venv --system-site-packages $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -c constraints.txt -e '.[test,report]'
	@$(PY) -c 'import mininet.net, exabgp, scapy, yaml, rich, pytest, selenium' && echo "calinet setup: ok"
	@touch $(STAMP)

demo: setup
	$(VENV)/bin/calinet run experiments/quickstart.yaml --out results/quickstart
	@echo "report: results/quickstart/report.html (open it in a browser)"

test: setup
	$(PY) -m pytest tests

test-unit: setup
	$(PY) -m pytest tests/unit

bench: setup
	$(PY) bench/bringup.py --json docs/bench-bringup.json
	$(PY) bench/bgp_convergence.py --json docs/bench-bgp.json
	$(PY) bench/netpolicy.py --json docs/bench-policy.json
	$(PY) bench/experiments.py --json docs/bench-experiments.json
	$(PY) bench/services.py --json docs/bench-services.json
	$(PY) bench/fabric.py --json docs/bench-fabric.json
	$(PY) bench/dual_stack.py --json docs/bench-dual-stack.json
	$(PY) bench/conformance_ipv6.py --json docs/bench-conformance-ipv6.json

lint: setup
	$(VENV)/bin/ruff check .

# Removes only what calinet created (ledger + our name prefixes), even after a crash.
clean:
	@if [ -x $(VENV)/bin/calinet ]; then $(VENV)/bin/calinet clean; fi
