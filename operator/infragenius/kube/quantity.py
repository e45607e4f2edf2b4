"""Kubernetes resource quantities (resource.Quantity): "250m", "1Gi", "1e3", "12"."""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

# Grammar of k8s.io/apimachinery/pkg/api/resource: a signed decimal, then a decimal exponent, a binary
# suffix or a decimal SI suffix. "E" alone is exa; "E3"/"e3" is an exponent.
_QUANTITY = re.compile(r"^([+-]?(?:\d+\.?\d*|\.\d+))(?:([eE][+-]?\d+)|(Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E))?$")
_SUFFIX = {
    "Ki": Decimal(2) ** 10, "Mi": Decimal(2) ** 20, "Gi": Decimal(2) ** 30,
    "Ti": Decimal(2) ** 40, "Pi": Decimal(2) ** 50, "Ei": Decimal(2) ** 60,
    "n": Decimal("1e-9"), "u": Decimal("1e-6"), "m": Decimal("1e-3"),
    "k": Decimal("1e3"), "M": Decimal("1e6"), "G": Decimal("1e9"),
    "T": Decimal("1e12"), "P": Decimal("1e15"), "E": Decimal("1e18"),
}  # fmt: skip


def parse_quantity(value: str | int | float) -> Decimal:
    """A quantity as an exact Decimal in base units ("250m" -> 0.250, "1Ki" -> 1024); ValueError if malformed."""
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a Kubernetes quantity")
    if isinstance(value, (int, float)):
        # str() first: Decimal(0.1) would carry the binary float's error.
        return Decimal(str(value))
    if not isinstance(value, str):
        raise ValueError(f"{value!r} is not a Kubernetes quantity")
    match = _QUANTITY.match(value.strip())
    if not match:
        raise ValueError(f"{value!r} is not a Kubernetes quantity")
    number, exponent, suffix = match.groups()
    try:
        result = Decimal(number)
        if exponent:
            result *= Decimal(10) ** int(exponent[1:])
        elif suffix:
            result *= _SUFFIX[suffix]
    except (InvalidOperation, ValueError):
        raise ValueError(f"{value!r} is not a Kubernetes quantity") from None
    return result


def quantity_or_none(value: object) -> Decimal | None:
    """:func:`parse_quantity` for an optional API field: None when it is missing or malformed."""
    if value is None or not isinstance(value, (str, int, float)):
        return None
    try:
        return parse_quantity(value)
    except ValueError:
        return None
