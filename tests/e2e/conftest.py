"""Fixtures for end-to-end tests: real Mininet clusters with their own state directories."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "topologies" / "examples"


@pytest.fixture(scope="module")
def three_node(tmp_path_factory):
    from orchestrator.testbed import Testbed
    # Without BGP: these tests are about the node-local plumbing (and that nothing crosses
    # nodes, or leaves the testbed, until routes exist); tests/e2e/test_bgp*.py run BGP.
    tb = Testbed(str(EXAMPLES / "three-node.yaml"), bgp=False,
                 state_dir=str(tmp_path_factory.mktemp("state")), keep_state=False)
    tb.start()
    try:
        yield tb
    finally:
        tb.stop()
