"""pytest plugin `calinet`: a `testbed` fixture for users' own packet and policy tests.

Registered as the pytest11 entry point `calinet` (so it loads in every pytest of the venv the
package is installed in; `-p calinet` names it explicitly). Importing it is cheap and has no
side effects; the `testbed` fixture brings a whole emulated cluster up once per test module
(root: Mininet, namespaces, iptables, ExaBGP) and tears it down after the module, pass or fail.

    pytestmark = [pytest.mark.calinet_topology("my-cluster.yaml"),
                  pytest.mark.calinet_manifests("pods.yaml")]

    def test_web_is_reachable(testbed):
        assert testbed.probe("demo/client", "demo/web", 80)

Options: --calinet-topology PATH (default: the three-node example shipped with calinet),
--calinet-bgp / --calinet-no-bgp, --calinet-ready-timeout SECONDS. Markers (module level,
``pytestmark``, since the testbed is per module): calinet_topology(PATH or YAML text,
bgp=None), calinet_manifests(*sources); ``calinet`` marks a test as needing root (tests
using ``testbed`` get it automatically) and skips it with the reason below without root.
"""

from __future__ import annotations

import functools
import os
import shutil
from pathlib import Path

import pytest

ROOT_REASON = "calinet tests need root: network namespaces, iptables; run with sudo"
DEFAULT_TOPOLOGY = "three-node.yaml"   # in the topologies package's examples/
FIXTURES = ("testbed", "testbed_apply")
# Markers naming the cluster only make sense where the module-scoped fixture can see them.
MODULE_MARKERS = ("calinet_topology", "calinet_manifests")


def pytest_addoption(parser) -> None:
    group = parser.getgroup("calinet", "calinet emulated Kubernetes+Calico cluster")
    group.addoption("--calinet-topology", metavar="PATH", default=None,
                    help="topology file for modules without a calinet_topology marker "
                         f"(default: calinet's own examples/{DEFAULT_TOPOLOGY})")
    group.addoption("--calinet-bgp", dest="calinet_bgp", action="store_true", default=True,
                    help="run one BGP speaker per node, so pods reach other nodes (default)")
    group.addoption("--calinet-no-bgp", dest="calinet_bgp", action="store_false",
                    help="no BGP speakers: pods reach only pods on their own node")
    group.addoption("--calinet-ready-timeout", metavar="SECONDS", type=float, default=120.0,
                    help="how long the testbed fixture waits for the calinet_manifests "
                         "pods to be ready (default 120)")


def pytest_configure(config) -> None:
    for line in (
        "calinet: needs root for a calinet testbed; skipped with the reason without it",
        "calinet_topology(path, bgp=None): the module's cluster (a topology file, relative to "
        "the test file, or YAML text); bgp=False for no BGP speakers",
        "calinet_manifests(*sources): manifests (paths, YAML text, dicts) applied when the "
        "module's testbed starts; the fixture waits until they are ready",
    ):
        config.addinivalue_line("markers", line)


def pytest_collection_modifyitems(config, items) -> None:
    for item in items:
        if any(f in getattr(item, "fixturenames", ()) for f in FIXTURES):
            item.add_marker(pytest.mark.calinet)
        if item.get_closest_marker("calinet") is not None:
            reason = missing_privileges()
            if reason:
                item.add_marker(pytest.mark.skip(reason=reason))


def pytest_runtest_setup(item) -> None:
    # A topology on one test or class would silently not apply to the module's testbed.
    for node in (item, item.getparent(pytest.Class)):
        for mark in getattr(node, "own_markers", ()) if node is not None else ():
            if mark.name in MODULE_MARKERS:
                pytest.fail(f"@pytest.mark.{mark.name} goes on the module (pytestmark = "
                            f"[...]): the testbed is shared by every test of {item.path.name}",
                            pytrace=False)


@functools.cache
def missing_privileges() -> str | None:
    """Why a testbed cannot run here, or None (once per run: it does not change)."""
    if os.geteuid() != 0:
        return ROOT_REASON
    for tool in ("ip", "mnexec", "iptables", "ipset"):
        if shutil.which(tool) is None:
            return f"calinet tests need `{tool}` on PATH: run `sudo make setup` in calinet"
    return None


# -- resolving the module's choices ---------------------------------------------------------

def shipped_topologies() -> Path:
    """The examples directory of the installed topologies package."""
    import topologies
    return Path(topologies.__file__).resolve().parent / "examples"


def resolve_topology(value, bases) -> str | Path:
    """A topology file or YAML text: text (with a newline) as is; an absolute path as is; a
    relative one under the first of ``bases`` where it exists, else one of calinet's own
    examples by file name ("racks.yaml") or stem ("racks")."""
    if isinstance(value, str) and "\n" in value:
        return value
    path = Path(value)
    if path.is_absolute():
        return path
    tried = [Path(b) / path for b in bases]
    shipped = shipped_topologies()
    tried += [shipped / path.name, shipped / f"{path.name}.yaml"]
    for candidate in tried:
        if candidate.is_file():
            return candidate
    pytest.fail(f"calinet topology {str(value)!r} not found; looked at: "
                + ", ".join(str(t) for t in tried), pytrace=False)


def resolve_manifest(source, bases):
    """A manifest path relative to the first of ``bases`` that has it; anything else (YAML
    text, dicts, lists, absolute or missing paths) unchanged, for the loader to judge."""
    if isinstance(source, (str, os.PathLike)) and "\n" not in str(source) \
            and not Path(source).is_absolute():
        for base in bases:
            if (Path(base) / source).exists():
                return str(Path(base) / source)
    return source


def module_choices(request) -> tuple[object, bool, list]:
    """(topology, bgp, manifests) for the requesting module: markers, then options."""
    config = request.config
    module_dir = request.path.parent
    bases = [module_dir, config.rootpath, config.invocation_params.dir]
    bgp = config.getoption("calinet_bgp")
    mark = request.node.get_closest_marker("calinet_topology")
    if mark is not None:
        if len(mark.args) != 1 or set(mark.kwargs) - {"bgp"}:
            pytest.fail("usage: @pytest.mark.calinet_topology(path, bgp=None)", pytrace=False)
        topology = resolve_topology(mark.args[0], bases)
        if mark.kwargs.get("bgp") is not None:
            bgp = bool(mark.kwargs["bgp"])
    else:
        option = config.getoption("calinet_topology")
        topology = resolve_topology(option or DEFAULT_TOPOLOGY,
                                    [config.invocation_params.dir] if option else [])
    manifests = [resolve_manifest(src, bases)
                 for mark in request.node.iter_markers("calinet_manifests")
                 for src in mark.args]
    return topology, bgp, manifests


# -- fixtures -------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def testbed(request):
    """A started orchestrator.testbed.Testbed for this module (its calinet_topology, else
    --calinet-topology), with the calinet_manifests applied and ready; stopped after the
    module's last test, pass or fail. Skips without root."""
    reason = missing_privileges()
    if reason:
        pytest.skip(reason)
    topology, bgp, manifests = module_choices(request)
    from orchestrator.testbed import Testbed
    # A temporary state directory: removed with the testbed.
    tb = Testbed(topology, bgp=bgp, manifests=manifests)
    tb.start()      # on failure it has already torn down what it started
    try:
        if manifests:
            tb.wait_ready(timeout=request.config.getoption("calinet_ready_timeout"))
        yield tb
    finally:
        tb.stop()


@pytest.fixture
def testbed_apply(testbed, request):
    """testbed_apply(source) applies manifests for this test only and waits until they are
    in force (pods ready, policy rules on every node); at teardown, pass or fail, what it
    applied is deleted again and the test waits until that is in force too."""
    timeout = request.config.getoption("calinet_ready_timeout")
    bases = [request.path.parent, request.config.rootpath]
    applied = []

    def apply(source) -> list[str]:
        source = resolve_manifest(source, bases)
        out = testbed.apply(source)
        applied.append(source)
        testbed.wait_ready(timeout=timeout)
        return out

    yield apply
    for source in reversed(applied):
        testbed.delete(source)
    if applied:
        testbed.wait_ready(timeout=timeout)
