"""Test modules have unique basenames across tests/ (no __init__.py: pytest imports them by
basename, and two of the same name abort the whole collection)."""

from collections import Counter
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]


def test_test_module_basenames_are_unique():
    names = Counter(p.name for p in TESTS.rglob("test_*.py"))
    assert [n for n, c in names.items() if c > 1] == []
