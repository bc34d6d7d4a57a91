"""parse_cpu / parse_memory / parse_quantity against Kubernetes Quantity semantics."""

from fractions import Fraction

import pytest

from orchestrator.api import parse_cpu, parse_memory, parse_quantity
from orchestrator.errors import ValidationError


@pytest.mark.parametrize("text,milli", [
    ("100m", 100), ("0.5", 500), ("1", 1000), ("2.5", 2500), (".5", 500), ("1k", 1_000_000),
    ("0.0001", 1),      # rounded up like MilliValue()
    ("250000u", 250), ("1e-3", 1), ("0", 0), (1, 1000), (0.25, 250),
])
def test_parse_cpu(text, milli):
    assert parse_cpu(text) == milli


@pytest.mark.parametrize("text,nbytes", [
    ("64Mi", 64 * 2**20), ("1Gi", 2**30), ("128974848", 128974848), ("129e6", 129_000_000),
    ("129M", 129_000_000), ("123Mi", 128974848), ("1G", 10**9), ("0.5Ki", 512),
    ("1Ei", 2**60), ("1E", 10**18), ("1E3", 1000), ("+1Ki", 1024), ("1m", 1),
])
def test_parse_memory(text, nbytes):
    assert parse_memory(text) == nbytes


def test_parse_quantity_exact_and_negative():
    assert parse_quantity("1.5Gi") == Fraction(3, 2) * 2**30
    assert parse_quantity("-1") == -1
    assert parse_quantity("1e+2") == 100


@pytest.mark.parametrize("bad", ["", "abc", "1.2.3", "1Kb", "1 Mi", "Mi", "1ki", "--1", "1e",
                                 "0x10", True, None, [1]])
def test_parse_quantity_rejects(bad):
    with pytest.raises(ValidationError) as exc:
        parse_quantity(bad, "spec.containers[0].resources.limits[cpu]")
    assert exc.value.field == "spec.containers[0].resources.limits[cpu]"
