"""The repository stands alone: no tracked file outside .ci/ reads or names the `shared`
directory beside the clone (a clean checkout does not have it). Reads `git ls-files`.
The name is spelled here only in pieces, so this file does not name it either."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SHARED_DIR = ".." + "/" + "shared"
# SHARED_DIR as written in docs and shell, or built in Python as <repo>.parent / <"shared">.
NAMES_SHARED = re.compile(r"\.\./shared\b|parent\s*/\s*[\"']shared[\"']")


def _tracked() -> list[str]:
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    r = subprocess.run(["git", "-C", str(REPO), "ls-files", "-z"], capture_output=True)
    if r.returncode != 0:
        pytest.skip(f"not a git checkout: {r.stderr.decode(errors='replace').strip()}")
    return [p for p in r.stdout.decode().split("\0") if p]


def test_no_tracked_file_outside_ci_names_the_shared_directory():
    offenders = []
    for rel in _tracked():
        if rel.startswith(".ci/"):
            continue
        path = REPO / rel
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            continue   # binary (images) or removed from the work tree but still tracked
        for n, line in enumerate(text.splitlines(), 1):
            if NAMES_SHARED.search(line):
                offenders.append(f"{rel}:{n}: {line.strip()}")
    assert not offenders, (f"files outside .ci/ name {SHARED_DIR}, which a clean clone does not "
                           "have (use conformance/cases and the project's docs):\n"
                           + "\n".join(offenders))


def test_the_pattern_finds_both_spellings():
    assert NAMES_SHARED.search(f"see {SHARED_DIR}/DESIGN.md")
    assert NAMES_SHARED.search("SHARED = REPO.parent / " + '"shared" / "netpol-cases"')
    assert not NAMES_SHARED.search("shared by every layer")
