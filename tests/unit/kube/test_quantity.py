"""Kubernetes quantities: decimal and binary SI suffixes, exponents, milli."""

from __future__ import annotations

from decimal import Decimal

import pytest

from infragenius.kube.quantity import parse_quantity, quantity_or_none


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("12", Decimal(12)),
        ("0", Decimal(0)),
        ("1.5", Decimal("1.5")),
        (".5", Decimal("0.5")),
        ("-2", Decimal(-2)),
        ("+2", Decimal(2)),
        ("250m", Decimal("0.25")),
        ("100u", Decimal("0.0001")),
        ("5n", Decimal("0.000000005")),
        ("1k", Decimal(1000)),
        ("1M", Decimal(10**6)),
        ("2G", Decimal(2 * 10**9)),
        ("1T", Decimal(10**12)),
        ("1P", Decimal(10**15)),
        ("1E", Decimal(10**18)),
        ("1Ki", Decimal(1024)),
        ("1Mi", Decimal(2**20)),
        ("1.5Gi", Decimal(3 * 2**29)),
        ("1Ti", Decimal(2**40)),
        ("1Pi", Decimal(2**50)),
        ("1Ei", Decimal(2**60)),
        ("1e3", Decimal(1000)),
        ("1E3", Decimal(1000)),  # an exponent, not exa: "E" is exa only on its own
        ("5e-3", Decimal("0.005")),
        (" 128Mi ", Decimal(128 * 2**20)),
    ],
)
def test_parse_quantity(text: str, expected: Decimal) -> None:
    assert parse_quantity(text) == expected


def test_parse_quantity_numbers() -> None:
    assert parse_quantity(3) == Decimal(3)
    assert parse_quantity(0.1) == Decimal("0.1")  # via str: no binary float error


@pytest.mark.parametrize("text", ["", "abc", "1KB", "1ki", "Mi", "1.2.3", "1 Gi", "--1"])
def test_parse_quantity_malformed_raises(text: str) -> None:
    with pytest.raises(ValueError):
        parse_quantity(text)


def test_quantity_or_none_for_optional_fields() -> None:
    assert quantity_or_none("500m") == Decimal("0.5")
    assert quantity_or_none(None) is None
    assert quantity_or_none("lots") is None
    assert quantity_or_none({"not": "a quantity"}) is None
    assert quantity_or_none(True) is None


# Moved from tests/unit/detectors/test_resourcequota.py (the detectors' former parser).
@pytest.mark.parametrize(
    "text, expected",
    [
        ("2", Decimal(2)),
        ("500m", Decimal("0.5")),
        ("1.5", Decimal("1.5")),
        ("128Ki", Decimal(131072)),
        ("64Mi", Decimal(67108864)),
        ("1Gi", Decimal(1073741824)),
        ("1Ti", Decimal(2) ** 40),
        ("2k", Decimal(2000)),
        ("3M", Decimal(3_000_000)),
        ("1G", Decimal(10) ** 9),
        ("1e3", Decimal(1000)),
        ("12E-1", Decimal("1.2")),
        ("1E", Decimal(10) ** 18),
        ("100n", Decimal("1e-7")),
        (".5", Decimal("0.5")),
        (4, Decimal(4)),
    ],
)
def test_parse_quantity_resourcequota_cases(text: object, expected: Decimal) -> None:
    assert parse_quantity(text) == expected  # type: ignore[arg-type]
    assert quantity_or_none(text) == expected


@pytest.mark.parametrize("text", ["", "abc", "1Xi", None, "1.2.3"])
def test_quantity_or_none_rejects_garbage(text: object) -> None:
    assert quantity_or_none(text) is None
