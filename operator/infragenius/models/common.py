"""Types shared by every custom resource: conditions, durations, the LLM block."""

from __future__ import annotations

import datetime as dt
import re
from enum import Enum
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, StrictBool
from pydantic.alias_generators import to_camel

# Go-style durations without days, so CEL's duration() can read them: 30s, 5m, 1h30m. At most six digits
# a part and 20 characters in all keep every value inside CEL's duration range (about 290 years): a longer
# one made the API server report a "type conversion error" instead of the rule's message.
DURATION_PATTERN = r"^([0-9]{1,6}(s|m|h))+$"
DURATION_MAX_LENGTH = 20
# Prometheus-style range for lookbacks: 30m, 6h, 1d, 1w (not zero: Prometheus refuses an empty range).
PROM_RANGE_PATTERN = r"^[1-9][0-9]{0,5}(s|m|h|d|w)$"
DNS_LABEL_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
# RFC 3339 with a zone, as the API server's date-time format and CEL's timestamp() read it.
RFC3339_PATTERN = (
    r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?(Z|[+-]([01][0-9]|2[0-3]):[0-5][0-9])$"
)

# The string syntax of a Kubernetes label selector (what `kubectl get -l` takes): comma-separated
# requirements `key`, `!key`, `key=value`, `key==value`, `key!=value`, `key in (a,b)`, `key notin (a,b)`,
# `key>1`, `key<1` (a set may hold empty values, `()` included, as the API server's parser allows).
# Checked here because the API server stores any string, and a malformed selector would only surface
# later as a 400 on every LIST the operator makes. The regex is written for both RE2 (CEL's matches())
# and Python's re.
_LABEL_NAME = r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?"
_LABEL_PREFIX = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*"
_LABEL_KEY = rf"({_LABEL_PREFIX}/)?{_LABEL_NAME}"
_LABEL_VALUE = rf"({_LABEL_NAME})?"
_LABEL_REQUIREMENT = (
    rf"(!\s*{_LABEL_KEY}|{_LABEL_KEY}("
    rf"\s*(==|!=|=)\s*{_LABEL_VALUE}"
    rf"|\s*(<|>)\s*[0-9]+"
    rf"|\s+(in|notin)\s*\(\s*{_LABEL_VALUE}(\s*,\s*{_LABEL_VALUE})*\s*\)"
    rf")?)"
)
LABEL_SELECTOR_PATTERN = rf"^\s*{_LABEL_REQUIREMENT}(\s*,\s*{_LABEL_REQUIREMENT})*\s*$"
LABEL_SELECTOR_MESSAGE = "labelSelector must be a label selector such as app=web,tier!=db or env in (prod,staging)"


def _label_selector(value: str) -> str:
    if re.fullmatch(LABEL_SELECTOR_PATTERN, value) is None:
        raise ValueError(LABEL_SELECTOR_MESSAGE)
    return value


LabelSelector = Annotated[
    str,
    Field(
        min_length=1,
        max_length=1024,
        # A CEL raw string: the pattern has backslashes but no quote.
        json_schema_extra={
            "x-kubernetes-validations": [
                {"rule": f"self.matches(r'{LABEL_SELECTOR_PATTERN}')", "message": LABEL_SELECTOR_MESSAGE}
            ]
        },
    ),
    AfterValidator(_label_selector),
]


def _instant(value: str) -> str:
    """The pattern checks the form; this checks the calendar (no February 30th), as the API server does."""
    try:
        dt.datetime.fromisoformat(re.sub(r"(\.[0-9]{6})[0-9]+", r"\1", value).replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"{value!r} is not a valid RFC 3339 time") from None
    return value


# An RFC 3339 instant kept as the string the user wrote (the API server checks it as format date-time).
Timestamp = Annotated[
    str,
    Field(max_length=64, pattern=RFC3339_PATTERN, json_schema_extra={"format": "date-time"}),
    AfterValidator(_instant),
]


def _aware_instant(value: Any) -> Any:
    """For datetime fields: from JSON only an RFC 3339 string with a zone, as the CRD's date-time format takes.

    Without this pydantic would also take dates, zone-less times and Unix seconds that the API server refuses.
    """
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            raise ValueError("a time needs a zone, e.g. 2026-01-01T00:00:00Z")
        return value
    if not isinstance(value, str) or re.fullmatch(RFC3339_PATTERN, value) is None:
        raise ValueError("must be an RFC 3339 time with a zone, e.g. 2026-01-01T00:00:00Z")
    return _instant(value)


Instant = Annotated[dt.datetime, BeforeValidator(_aware_instant), Field(json_schema_extra={"pattern": RFC3339_PATTERN})]


def _json_number(value: Any) -> Any:
    """Numbers as JSON has them: pydantic would otherwise turn "5" or true into 5 where the API server refuses."""
    if isinstance(value, (str, bytes, bool)):
        raise ValueError("must be a number")
    return value


SpecInt = Annotated[int, BeforeValidator(_json_number)]
SpecFloat = Annotated[float, BeforeValidator(_json_number)]
SpecBool = StrictBool

Duration = Annotated[str, Field(pattern=DURATION_PATTERN, max_length=DURATION_MAX_LENGTH)]
PromRange = Annotated[str, Field(pattern=PROM_RANGE_PATTERN, max_length=16)]

_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(text: str) -> dt.timedelta:
    """Parse '1h30m', '5m', '2d' into a timedelta; raise ValueError on anything else."""
    parts = re.findall(r"([0-9]+)([smhdw])", text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise ValueError(f"invalid duration {text!r}; use forms like 30s, 5m, 1h30m")
    try:
        return dt.timedelta(seconds=sum(int(n) * _UNIT_SECONDS[u] for n, u in parts))
    except OverflowError:
        raise ValueError(f"duration {text!r} is too long") from None


class CamelModel(BaseModel):
    """camelCase on the wire (as Kubernetes does), snake_case in Python; unknown fields rejected."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")


class ConditionStatus(str, Enum):
    true = "True"
    false = "False"
    unknown = "Unknown"


class Condition(CamelModel):
    """A status condition as `kubectl wait` and Argo CD read it."""

    type: str = Field(max_length=64)
    status: ConditionStatus
    reason: str = Field(max_length=64, pattern=r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$")
    message: str = Field(default="", max_length=1024)
    last_transition_time: str = Field(description="RFC 3339 time of the last status change.")
    observed_generation: int | None = Field(default=None, ge=0)


class LLMSpec(CamelModel):
    """Optional LLM explanation of the findings (off by default)."""

    enabled: SpecBool = False
    model: str | None = Field(default=None, max_length=128, description="Overrides the operator's default model.")
    anonymize: SpecBool = Field(default=True, description="Mask names, addresses and secrets before they leave.")
