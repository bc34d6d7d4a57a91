"""Every benchmark script starts as `make bench` runs it (`python bench/<name>.py`): its
imports resolve (the script's own directory comes first on sys.path, so no bench file may
shadow a package of the project) and it answers --help without root."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPTS = sorted(p.name for p in (REPO / "bench").glob("*.py") if p.name != "common.py")
PACKAGES = {p.name for p in REPO.iterdir() if (p / "__init__.py").exists()}


def test_no_bench_script_shadows_a_package():
    assert not {Path(s).stem for s in SCRIPTS} & PACKAGES


@pytest.mark.parametrize("script", SCRIPTS)
def test_bench_script_starts(script):
    r = subprocess.run([sys.executable, f"bench/{script}", "--help"], cwd=REPO,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert "usage:" in r.stdout


def test_make_bench_runs_every_script():
    makefile = (REPO / "Makefile").read_text()
    assert all(f"bench/{s}" in makefile for s in SCRIPTS)
