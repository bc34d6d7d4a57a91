"""orchestrator.api.quantity: Kubernetes quantity syntax, rounding, formatting."""

from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from orchestrator.api.quantity import (
    format_cpu,
    format_decimal,
    format_memory,
    parse_cpu,
    parse_memory,
    parse_quantity,
)
from orchestrator.errors import ValidationError


@pytest.mark.parametrize("text,value", [
    ("1", 1), ("0", 0), ("+2", 2), ("-3", -3), ("1.5", Fraction(3, 2)), (".5", Fraction(1, 2)),
    ("2.", 2), ("100m", Fraction(1, 10)), ("5n", Fraction(5, 10**9)),
    ("7u", Fraction(7, 10**6)), ("1k", 1000), ("1M", 10**6), ("1G", 10**9), ("1T", 10**12),
    ("1P", 10**15), ("1E", 10**18), ("1Ki", 1024), ("1Mi", 2**20), ("1Gi", 2**30),
    ("1Ti", 2**40), ("1Pi", 2**50), ("1Ei", 2**60), ("0.5Ki", 512), ("129e6", 129 * 10**6),
    ("1E3", 1000), ("12e-3", Fraction(12, 1000)), ("1e+2", 100), (1, 1), (0.25, Fraction(1, 4)),
])
def test_parse_quantity(text, value):
    assert parse_quantity(text) == value


@pytest.mark.parametrize("bad", ["", "abc", "1.2.3", "1KI", "1 Mi", "Mi", "1ki", "1e", "--1",
                                 "1m5", None, True, [], float("nan")])
def test_parse_quantity_rejects(bad):
    with pytest.raises(ValidationError) as err:
        parse_quantity(bad, field="spec.containers[0].resources.requests.cpu")
    assert "spec.containers[0].resources.requests.cpu" in str(err.value)


@pytest.mark.parametrize("text,milli", [
    ("100m", 100), ("0.5", 500), ("1", 1000), (2, 2000), ("0.0001", 1), ("1.0005", 1001),
    ("250m", 250), ("1k", 1_000_000),
])
def test_parse_cpu_rounds_up_to_millicores(text, milli):
    assert parse_cpu(text) == milli


@pytest.mark.parametrize("text,n", [
    ("64Mi", 64 * 2**20), ("1G", 10**9), ("128974848", 128974848), ("129e6", 129 * 10**6),
    ("123Mi", 123 * 2**20), ("0.5", 1), ("1500m", 2), ("110", 110),
])
def test_parse_memory_rounds_up_to_bytes(text, n):
    assert parse_memory(text) == n


def test_negative_requests_rejected_with_field():
    with pytest.raises(ValidationError, match="greater than or equal to 0") as err:
        parse_memory("-1Mi", field="status.capacity.memory")
    assert err.value.field == "status.capacity.memory"
    with pytest.raises(ValidationError):
        parse_cpu("-100m")


@pytest.mark.parametrize("milli,text", [(0, "0"), (250, "250m"), (1000, "1"), (2500, "2500m"),
                                        (4000, "4")])
def test_format_cpu(milli, text):
    assert format_cpu(milli) == text


@pytest.mark.parametrize("n,text", [(0, "0"), (1024, "1Ki"), (2**20 * 128, "128Mi"),
                                    (2**30 * 3, "3Gi"), (1536, "1536"), (1000, "1000"),
                                    (2**60, "1Ei"), (2**40 + 2**30, "1025Gi")])
def test_format_memory(n, text):
    assert format_memory(n) == text


@pytest.mark.parametrize("n,text", [(0, "0"), (1000, "1k"), (10**9, "1G"), (1500, "1500"),
                                    (7, "7"), (2 * 10**6, "2M")])
def test_format_decimal(n, text):
    assert format_decimal(n) == text


@given(st.integers(min_value=0, max_value=10**12))
def test_cpu_roundtrip(milli):
    assert parse_cpu(format_cpu(milli)) == milli


@given(st.integers(min_value=0, max_value=2**62))
def test_memory_roundtrip(n):
    assert parse_memory(format_memory(n)) == n
    assert parse_memory(format_decimal(n)) == n
