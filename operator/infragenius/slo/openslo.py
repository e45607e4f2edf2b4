"""OpenSLO v1 <-> SLOReview (pure: text and dicts in, dicts out; no Kubernetes API).

Import (``infragenius slo import``) reads ``SLO``, ``SLI``, ``Service``, ``DataSource`` and ``AlertPolicy``
documents (``apiVersion: openslo/v1``) and builds one SLOReview per SLO, through :class:`SLOReviewSpec`, so
the models stay the one definition of a valid SLOReview. Export (``infragenius slo export``) writes the SLOs
(with their indicator inline) and one ``Service`` per service back.

What maps:

- ``spec.objectives[0].target`` (0-1) or ``targetPercent`` -> ``objective`` (percent), in decimal, so 0.999
  gives exactly 99.9. Export writes ``target`` when it reads back as exactly the same float, else
  ``targetPercent`` (the objective itself): import(export(x)) == x for every float.
- ``timeWindow: [{duration: 28d, isRolling: true}]`` -> ``window: 28d``; days and weeks only, as the model.
- ``timeWindow: [{duration: 1M, isRolling: false, calendar: {startTime, timeZone}}]`` -> ``calendar: {unit:
  Month, startTime, timeZone}``; one day (1d), week (1w, 7d), month (1M), quarter (1Q) or year (1Y).
- ``budgetingMethod: Occurrences`` (events, as the SLOReview counts them).
- ``ratioMetric`` with Prometheus queries: ``bad``/``total`` -> ``sli.ratio``; ``good``/``total`` ->
  ``sli.ratio`` with errors = total - good; ``raw`` (``rawType: failure``) -> ``sli.raw``, ``success`` ->
  ``1 - (query)``. Each ``good``/``bad``/``total`` query is a counter selector (``sum(<selector>)`` is read
  as the selector: increase per series, then sum) or an expression using ``$window``, as the SLOReview
  reads them.
- ``thresholdMetric`` -> ``sli.latency`` when it is a histogram: the query is ``<name>_bucket{matchers}``,
  the objective's ``op`` is ``lte`` and its ``value`` the threshold in seconds (good = requests at or below
  the bound, which is what the histogram's ``le`` buckets count).
- ``spec.service`` -> ``service`` (a ``Service`` document of that name may be present; it is not required).
- ``metadata.name``, ``labels`` (single values), ``annotations``; ``displayName`` and ``spec.description``
  become the annotations ``infragenius.io/display-name`` and ``infragenius.io/description``.
- SLOReview fields OpenSLO has no place for (``interval``, ``evaluationTime``, ``prometheus``, ``llm``,
  ``rules``, ``attribution``) and ``metadata.namespace`` travel as the annotations
  ``infragenius.io/sloreview`` (JSON) and ``infragenius.io/namespace``, so a round trip keeps them.

What is refused, naming the field: rolling windows in hours/months/quarters/years, calendar windows
of several periods (2w) or in hours, ``Timeslices``/``RatioTimeslices``, more than one objective (write
one SLO per objective), composite objectives, non-Prometheus metric sources, gauges (``counter: false``)
without ``$window``, threshold metrics that are not histogram buckets, unknown fields, aliases, huge or
deeply nested input.

What is accepted with a warning: alert policies (``AlertPolicy``, ``AlertCondition``,
``AlertNotificationTarget`` documents and ``spec.alertPolicies``). The SLOReview alerts on fixed
multi-window burn-rate tiers (:data:`infragenius.slo.math.POLICIES`, see ``infragenius slo rules``);
OpenSLO's single-threshold conditions do not map onto them, and pretending they did would change when
someone is paged. ``DataSource`` documents only give a ``metricSourceRef`` its type.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import yaml
from pydantic import ValidationError

from infragenius.models.api import API_VERSION, GROUP, SLO_REVIEW
from infragenius.models.slo import (
    WINDOW_PLACEHOLDER,
    CalendarUnit,
    LatencySLI,
    RatioSLI,
    RawSLI,
    SLISpec,
    SLOCalendarSpec,
    SLOReviewSpec,
)

OPENSLO_API_VERSION = "openslo/v1"
KINDS = ("SLO", "SLI", "Service", "DataSource", "AlertPolicy", "AlertCondition", "AlertNotificationTarget")
ALERT_KINDS = ("AlertPolicy", "AlertCondition", "AlertNotificationTarget")
PROMETHEUS = "Prometheus"
OCCURRENCES = "Occurrences"

# A real OpenSLO file is a few KiB; the bounds stop a huge or bomb-shaped input before it costs memory.
MAX_INPUT_BYTES = 1024 * 1024
MAX_DEPTH = 32

DISPLAY_NAME_ANNOTATION = f"{GROUP}/display-name"
DESCRIPTION_ANNOTATION = f"{GROUP}/description"
NAMESPACE_ANNOTATION = f"{GROUP}/namespace"
SPEC_ANNOTATION = f"{GROUP}/sloreview"
# SLOReview fields without an OpenSLO counterpart, carried in SPEC_ANNOTATION.
EXTRA_SPEC_FIELDS = ("prometheus", "interval", "evaluationTime", "llm", "rules", "attribution")
# OpenSLO calendar window durations -> SLOReview calendar units (one period each; 7d is a week too).
CALENDAR_UNITS = {
    "1d": CalendarUnit.day,
    "1w": CalendarUnit.week,
    "7d": CalendarUnit.week,
    "1M": CalendarUnit.month,
    "1Q": CalendarUnit.quarter,
    "1Y": CalendarUnit.year,
}
_CALENDAR_DURATION = {
    CalendarUnit.day: "1d",
    CalendarUnit.week: "1w",
    CalendarUnit.month: "1M",
    CalendarUnit.quarter: "1Q",
    CalendarUnit.year: "1Y",
}
# Written by `kubectl apply`; it describes the SLOReview, not the SLO.
_LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")
_LABEL_NAME = r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?"
_QUALIFIED_KEY = re.compile(rf"^([a-z0-9]([-a-z0-9.]{{0,251}}[a-z0-9])?/)?{_LABEL_NAME}$")
_LABEL_VALUE = re.compile(rf"^({_LABEL_NAME})?$")
_WINDOW = re.compile(r"^[1-9][0-9]{0,2}(d|w)$")
# A counter selector the SLOReview can wrap in increase(...[w]): a name and/or {matchers}, nothing else.
_SELECTOR = re.compile(r"^\s*([a-zA-Z_:][a-zA-Z0-9_:]*\s*(\{[^{}]*\})?|\{[^{}]*\})\s*$")
# sum(<counter selector>), as the specification's own Prometheus example writes a counter query.
_SUMMED_SELECTOR = re.compile(r"^\s*sum\s*\(\s*([a-zA-Z_:][a-zA-Z0-9_:]*\s*(?:\{[^{}]*\})?|\{[^{}]*\})\s*\)\s*$")
_BUCKET = re.compile(r"^\s*([a-zA-Z_:][a-zA-Z0-9_:]*)_bucket(?:\{([^{}]*)\})?\s*$")
_LE_MATCHER = re.compile(r"(^|,)\s*le\s*(=|!=|=~|!~)")


class OpenSLOError(ValueError):
    """Input that cannot be imported or exported; the message names the document and the field."""


@dataclass
class ImportResult:
    """SLOReview manifests in input order, and what was read but not imported (for stderr)."""

    manifests: list[dict[str, Any]]
    warnings: list[str] = field(default_factory=list)


# --- reading YAML ---------------------------------------------------------------------------------


def load_yaml(text: str) -> list[object]:
    """Every document of a (multi-document) YAML text, refusing huge, aliased or deeply nested input."""
    if len(text.encode("utf-8", "surrogatepass")) > MAX_INPUT_BYTES:
        raise OpenSLOError(f"input is larger than {MAX_INPUT_BYTES} bytes")
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    # A pass over the events first: aliases are how a small text becomes a huge object (a "YAML bomb"),
    # and deep nesting makes the loader recurse; neither has a use in an SLO.
    depth = 0
    for event in yaml.parse(text, Loader=loader):
        if isinstance(event, yaml.AliasEvent):
            raise OpenSLOError(f"YAML aliases (*{event.anchor}) are not supported")
        if isinstance(event, yaml.MappingStartEvent | yaml.SequenceStartEvent):
            depth += 1
            if depth > MAX_DEPTH:
                raise OpenSLOError(f"YAML nested deeper than {MAX_DEPTH} levels")
        elif isinstance(event, yaml.MappingEndEvent | yaml.SequenceEndEvent):
            depth -= 1
    return [doc for doc in yaml.load_all(text, Loader=loader) if doc is not None]


class _Dumper(yaml.SafeDumper):
    """PyYAML's safe dumper, except that a string with U+0085 is double-quoted (written as the escape \\N).

    With allow_unicode PyYAML writes NEL raw in plain and single-quoted scalars, and YAML reads it back as a line
    break: a service named "a\\x85b" would not survive a round trip (found by the property test).
    """


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    if "\x85" in value:
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style='"')
    return dumper.represent_str(value)


_Dumper.add_representer(str, _represent_str)


def dump_yaml(documents: Sequence[Mapping[str, Any]]) -> str:
    """Multi-document YAML, keys in the order built (PyYAML's dumper: these files are small)."""
    return yaml.dump_all(documents, Dumper=_Dumper, sort_keys=False, allow_unicode=True, default_flow_style=False)


# --- small checks ---------------------------------------------------------------------------------


def _mapping(value: object, where: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise OpenSLOError(f"{where}: expected a mapping, got {type(value).__name__}")
    return value


def _only(value: Mapping[str, Any], allowed: Iterable[str], where: str, what: str) -> None:
    known = set(allowed)
    unknown = sorted(str(k) for k in value if k not in known)
    if unknown:
        raise OpenSLOError(f"{where}.{unknown[0]} is not supported: not a field of {what}")


def _string(value: object, where: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise OpenSLOError(f"{where}: expected a non-empty string, got {value!r}")
    return value


def _decimal(value: object, where: str) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise OpenSLOError(f"{where}: expected a number, got {value!r}")
    # repr: the shortest text that reads back as the same float, so 0.999 is Decimal("0.999").
    number = Decimal(repr(value))
    if not number.is_finite():
        # YAML's .nan and .inf: a NaN would also make Decimal comparisons raise.
        raise OpenSLOError(f"{where}: expected a finite number, got {value!r}")
    return number


def _labels(value: object, where: str) -> dict[str, str]:
    """OpenSLO allows a list per key, Kubernetes one string; a one-item list is that item."""
    if value is None:
        return {}
    labels: dict[str, str] = {}
    for key, item in _mapping(value, where).items():
        if isinstance(item, list):
            if len(item) != 1:
                raise OpenSLOError(
                    f"{where}.{key}: {len(item)} values are not supported: Kubernetes labels hold one value"
                )
            item = item[0]
        if not (isinstance(key, str) and _QUALIFIED_KEY.fullmatch(key)):
            raise OpenSLOError(f"{where}: {key!r} is not a valid Kubernetes label key")
        if not (isinstance(item, str) and _LABEL_VALUE.fullmatch(item)):
            raise OpenSLOError(f"{where}.{key}: {item!r} is not a valid Kubernetes label value")
        labels[key] = item
    return labels


def _annotations(value: object, where: str) -> dict[str, str]:
    if value is None:
        return {}
    annotations: dict[str, str] = {}
    for key, item in _mapping(value, where).items():
        if not (isinstance(key, str) and _QUALIFIED_KEY.fullmatch(key)):
            raise OpenSLOError(f"{where}: {key!r} is not a valid annotation key")
        if not isinstance(item, str):
            raise OpenSLOError(f"{where}.{key}: expected a string, got {type(item).__name__}")
        annotations[key] = item
    return annotations


def _local_time(value: object, where: str) -> str:
    """The specification writes ``startTime: 2020-01-21 12:30:00`` unquoted, which YAML reads as a time."""
    if isinstance(value, dt.datetime):
        if value.tzinfo is not None:
            raise OpenSLOError(f"{where}: {value.isoformat()} has a zone; give the local time and timeZone")
        return value.strftime("%Y-%m-%d %H:%M:%S")
    return _string(value, where)


def check_query(query: str, where: str) -> None:
    """A good/bad/total query the SLOReview can read: a counter selector, or an expression with $window."""
    if WINDOW_PLACEHOLDER in query or _SELECTOR.fullmatch(query):
        return
    raise OpenSLOError(
        f'{where}: {query!r} is neither a counter selector such as http_requests_total{{code=~"5.."}} '
        f"nor an expression using {WINDOW_PLACEHOLDER} for the lookback"
    )


def _increase(query: str) -> str:
    """``query`` over one lookback, as :func:`infragenius.slo.queries.ratio_query` reads a ratio query."""
    if WINDOW_PLACEHOLDER in query:
        return f"sum({query})"
    return f"sum(increase({query.strip()}[{WINDOW_PLACEHOLDER}]))"


# --- import ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Doc:
    kind: str
    name: str
    metadata: Mapping[str, Any]
    spec: Mapping[str, Any]


def _header(document: object, position: int) -> _Doc:
    where = f"document {position}"
    doc = _mapping(document, where)
    if doc.get("apiVersion") != OPENSLO_API_VERSION:
        raise OpenSLOError(f"{where}: apiVersion: expected {OPENSLO_API_VERSION!r}, got {doc.get('apiVersion')!r}")
    kind = doc.get("kind")
    if kind not in KINDS:
        raise OpenSLOError(f"{where}: kind: expected one of {', '.join(KINDS)}, got {kind!r}")
    _only(doc, ("apiVersion", "kind", "metadata", "spec"), where, f"an OpenSLO {kind}")
    metadata = _mapping(doc.get("metadata"), f"{where} ({kind}): metadata")
    name = metadata.get("name")
    # Alert documents are only reported, never become objects: the specification's own example is
    # named "AlertPolicy", which no Kubernetes object could be.
    if kind in ALERT_KINDS and isinstance(name, str) and 0 < len(name) <= 253 and name.isprintable():
        pass
    elif not isinstance(name, str) or not _DNS_SUBDOMAIN.fullmatch(name):
        raise OpenSLOError(f"{where} ({kind}): metadata.name: {name!r} is not a valid Kubernetes name")
    spec = doc.get("spec", {})
    return _Doc(str(kind), name, metadata, _mapping(spec if spec is not None else {}, f"{kind} {name}: spec"))


class _Importer:
    def __init__(self, docs: list[_Doc]) -> None:
        self.by_kind: dict[str, dict[str, _Doc]] = {kind: {} for kind in KINDS}
        for doc in docs:
            if doc.name in self.by_kind[doc.kind]:
                raise OpenSLOError(f"{doc.kind} {doc.name}: metadata.name: defined twice")
            self.by_kind[doc.kind][doc.name] = doc
        self.warnings: list[str] = []

    def metric_query(self, source_holder: object, where: str) -> str:
        """The PromQL of one ``{metricSource: {type: Prometheus, spec: {query: ...}}}``."""
        holder = _mapping(source_holder, where)
        _only(holder, ("metricSource",), where, "a metric")
        where = f"{where}.metricSource"
        source = _mapping(holder.get("metricSource"), where)
        _only(source, ("metricSourceRef", "type", "spec"), where, "a metricSource")
        kind = source.get("type")
        ref = source.get("metricSourceRef")
        if ref is not None:
            data_source = self.by_kind["DataSource"].get(str(ref))
            if data_source is None and kind is None:
                raise OpenSLOError(f"{where}.metricSourceRef: no DataSource named {ref!r} and no type given")
            if data_source is not None:
                ref_type = data_source.spec.get("type")
                if kind is not None and ref_type != kind:
                    raise OpenSLOError(f"{where}.type: {kind!r}, but DataSource {ref} is of type {ref_type!r}")
                kind = ref_type
        if kind != PROMETHEUS:
            raise OpenSLOError(f"{where}.type: {kind!r} is not supported: SLOReview reads Prometheus")
        spec = _mapping(source.get("spec"), f"{where}.spec")
        _only(spec, ("query",), f"{where}.spec", "a Prometheus metric source")
        return _string(spec.get("query"), f"{where}.spec.query")

    def sli(self, spec: Mapping[str, Any], where: str) -> tuple[SLISpec | None, Mapping[str, Any] | None]:
        """The SLI, or (None, thresholdMetric) when the objective decides (latency needs its op and value)."""
        _only(spec, ("description", "ratioMetric", "thresholdMetric"), where, "an SLI spec")
        if ("ratioMetric" in spec) == ("thresholdMetric" in spec):
            raise OpenSLOError(f"{where}: set exactly one of ratioMetric and thresholdMetric")
        if "thresholdMetric" in spec:
            return None, _mapping(spec["thresholdMetric"], f"{where}.thresholdMetric")
        where = f"{where}.ratioMetric"
        ratio = _mapping(spec["ratioMetric"], where)
        _only(ratio, ("counter", "good", "bad", "total", "rawType", "raw"), where, "a ratioMetric")
        if "raw" in ratio:
            if {"good", "bad", "total"} & set(ratio):
                raise OpenSLOError(f"{where}.raw: cannot be used together with good, bad or total")
            query = self.metric_query(ratio["raw"], f"{where}.raw")
            raw_type = ratio.get("rawType")
            if raw_type not in ("success", "failure"):
                raise OpenSLOError(f"{where}.rawType: expected success or failure, got {raw_type!r}")
            if WINDOW_PLACEHOLDER not in query:
                raise OpenSLOError(
                    f"{where}.raw.metricSource.spec.query: must use {WINDOW_PLACEHOLDER}: a precomputed ratio is "
                    "read over each lookback"
                )
            # failure is the error ratio already; success is its complement.
            error_ratio = query if raw_type == "failure" else f"1 - ({query})"
            return SLISpec(raw=RawSLI(error_ratio_query=error_ratio)), None
        if "rawType" in ratio:
            raise OpenSLOError(f"{where}.rawType: only used with raw")
        if ("good" in ratio) == ("bad" in ratio) or "total" not in ratio:
            raise OpenSLOError(f"{where}: set total and exactly one of good and bad")
        queries = {
            part: self.metric_query(ratio[part], f"{where}.{part}")
            for part in ("good", "bad", "total")
            if part in ratio
        }
        counter = ratio.get("counter", True)
        if not isinstance(counter, bool):
            raise OpenSLOError(f"{where}.counter: expected true or false, got {counter!r}")
        for part, query in list(queries.items()):
            field_path = f"{where}.{part}.metricSource.spec.query"
            summed = _SUMMED_SELECTOR.fullmatch(query)
            if counter and summed is not None:
                # sum(counter) then increase() would miss each series' resets; increase per series, then sum.
                queries[part] = query = summed.group(1).strip()
                self.warnings.append(f"{field_path}: sum(...) read as the counter selector {query}")
            if not counter and WINDOW_PLACEHOLDER not in query:
                raise OpenSLOError(
                    f"{field_path}: counter: false needs a query using {WINDOW_PLACEHOLDER}: "
                    "SLOReview reads a plain selector as a counter"
                )
            check_query(query, field_path)
        total = queries["total"]
        if "bad" in queries:
            return SLISpec(ratio=RatioSLI(error_query=queries["bad"], total_query=total)), None
        # errors = total - good over the same lookback: the SLOReview's ratio sums each side once.
        errors = f"{_increase(total)} - {_increase(queries['good'])}"
        return SLISpec(ratio=RatioSLI(error_query=errors, total_query=total)), None

    def indicator(self, slo: _Doc) -> tuple[SLISpec | None, Mapping[str, Any] | None]:
        spec = slo.spec
        where = f"SLO {slo.name}: spec"
        if ("indicator" in spec) == ("indicatorRef" in spec):
            raise OpenSLOError(f"{where}: set exactly one of indicator and indicatorRef")
        if "indicatorRef" in spec:
            ref = spec["indicatorRef"]
            sli = self.by_kind["SLI"].get(str(ref))
            if sli is None:
                raise OpenSLOError(f"{where}.indicatorRef: no SLI named {ref!r} in the input")
            return self.sli(sli.spec, f"SLO {slo.name}: SLI {sli.name}: spec")
        inline = _mapping(spec["indicator"], f"{where}.indicator")
        _only(inline, ("metadata", "spec", "apiVersion", "kind"), f"{where}.indicator", "an SLI")
        if inline.get("kind", "SLI") != "SLI":
            raise OpenSLOError(f"{where}.indicator.kind: expected 'SLI', got {inline.get('kind')!r}")
        return self.sli(_mapping(inline.get("spec"), f"{where}.indicator.spec"), f"{where}.indicator.spec")

    def window(self, slo: _Doc) -> dict[str, Any]:
        """``{"window": 28d}`` for a rolling window, ``{"calendar": {...}}`` for a calendar-aligned one."""
        where = f"SLO {slo.name}: spec.timeWindow"
        windows = slo.spec.get("timeWindow")
        if not isinstance(windows, list) or len(windows) != 1:
            raise OpenSLOError(f"{where}: expected a list of exactly one window, got {windows!r}")
        where = f"{where}[0]"
        window = _mapping(windows[0], where)
        _only(window, ("duration", "isRolling", "calendar"), where, "a timeWindow")
        rolling, duration = window.get("isRolling", False), window.get("duration")
        if rolling is True:
            if "calendar" in window:
                raise OpenSLOError(f"{where}.calendar: a rolling window (isRolling: true) has no calendar")
            if not (isinstance(duration, str) and _WINDOW.fullmatch(duration)):
                raise OpenSLOError(
                    f"{where}.duration: {duration!r} is not supported: rolling SLOReview windows are whole days "
                    "or weeks (e.g. 28d, 4w)"
                )
            return {"window": duration}
        if rolling is not False:
            raise OpenSLOError(f"{where}.isRolling: {rolling!r} is not a boolean")
        if "calendar" not in window:
            raise OpenSLOError(f"{where}.calendar: a calendar window (isRolling: false) needs a calendar")
        unit = CALENDAR_UNITS.get(duration) if isinstance(duration, str) else None
        if unit is None:
            raise OpenSLOError(
                f"{where}.duration: {duration!r} is not supported for a calendar window: use one of "
                f"{', '.join(CALENDAR_UNITS)} (one day, week, month, quarter or year)"
            )
        calendar = _mapping(window["calendar"], f"{where}.calendar")
        _only(calendar, ("startTime", "timeZone"), f"{where}.calendar", "a calendar")
        fields: dict[str, Any] = {"unit": unit.value}
        if "timeZone" in calendar:
            fields["timeZone"] = _string(calendar["timeZone"], f"{where}.calendar.timeZone")
        if "startTime" in calendar:
            fields["startTime"] = _local_time(calendar["startTime"], f"{where}.calendar.startTime")
        try:
            SLOCalendarSpec.model_validate(fields)
        except ValidationError as err:
            first = err.errors()[0]
            field_name = ".".join(str(p) for p in first["loc"]) or "calendar"
            raise OpenSLOError(f"{where}.calendar.{field_name}: {first['msg']}") from None
        return {"calendar": fields}

    def objective(self, slo: _Doc, threshold: Mapping[str, Any] | None) -> tuple[float, LatencySLI | None]:
        """The objective in percent, and the latency SLI when the indicator is a threshold metric."""
        where = f"SLO {slo.name}: spec.objectives"
        objectives = slo.spec.get("objectives")
        if not isinstance(objectives, list) or not objectives:
            raise OpenSLOError(f"{where}: expected a list of one objective")
        if len(objectives) > 1:
            raise OpenSLOError(
                f"{where}: {len(objectives)} objectives are not supported: an SLOReview has one objective "
                "(write one SLO per objective)"
            )
        where = f"{where}[0]"
        objective = _mapping(objectives[0], where)
        for composite in ("indicator", "indicatorRef", "compositeWeight", "timeSliceTarget", "timeSliceWindow"):
            if composite in objective:
                raise OpenSLOError(
                    f"{where}.{composite} is not supported: SLOReview has no composite or time-slice objectives"
                )
        _only(objective, ("displayName", "op", "value", "target", "targetPercent"), where, "an objective")
        if "displayName" in objective:
            self.warnings.append(f"{where}.displayName is not imported: an SLOReview's objective has no name")
        if ("target" in objective) == ("targetPercent" in objective):
            raise OpenSLOError(f"{where}: set exactly one of target and targetPercent")
        if "target" in objective:
            target = _decimal(objective["target"], f"{where}.target")
            if not 0 < target < 1:
                raise OpenSLOError(f"{where}.target: {objective['target']!r} is not in (0, 1)")
            percent = float(target * 100)
        else:
            percent = float(_decimal(objective["targetPercent"], f"{where}.targetPercent"))
            if not 0 < percent < 100:
                raise OpenSLOError(f"{where}.targetPercent: {objective['targetPercent']!r} is not in (0, 100)")
        if threshold is None:
            for key in ("op", "value"):
                if key in objective:
                    raise OpenSLOError(f"{where}.{key} is only for a thresholdMetric")
            return percent, None
        return percent, self.latency(slo, threshold, objective, where)

    def latency(self, slo: _Doc, threshold: Mapping[str, Any], objective: Mapping[str, Any], where: str) -> LatencySLI:
        # Where the thresholdMetric was written: inline or in the referenced SLI.
        ref = slo.spec.get("indicatorRef")
        metric_where = (
            f"SLO {slo.name}: SLI {ref}: spec.thresholdMetric"
            if ref is not None
            else f"SLO {slo.name}: spec.indicator.spec.thresholdMetric"
        )
        query = self.metric_query(threshold, metric_where)
        bucket = _BUCKET.fullmatch(query)
        if bucket is None:
            raise OpenSLOError(
                f"{metric_where}.metricSource.spec.query: {query!r} is not supported: a thresholdMetric maps to "
                'the latency SLI only as a histogram\'s buckets, e.g. http_request_duration_seconds_bucket{job="api"}'
            )
        selector = bucket.group(2)
        if selector is not None and _LE_MATCHER.search(selector):
            raise OpenSLOError(
                f"{metric_where}.metricSource.spec.query: the le label is set from the objective's value"
            )
        if objective.get("op") != "lte":
            raise OpenSLOError(
                f"{where}.op: {objective.get('op')!r} is not supported: histogram buckets count requests at or "
                "below a bound (op: lte)"
            )
        value = _decimal(objective.get("value"), f"{where}.value")
        args: dict[str, Any] = {"metric": bucket.group(1), "threshold_seconds": float(value)}
        if selector:
            args["selector"] = selector
        try:
            return LatencySLI(**args)
        except ValidationError as err:
            first = err.errors()[0]
            field_path = {"threshold_seconds": f"{where}.value"}.get(
                str(first["loc"][0]), f"{metric_where}.metricSource.spec.query"
            )
            raise OpenSLOError(f"{field_path}: {first['msg']}") from None

    def slo(self, slo: _Doc, namespace: str | None) -> dict[str, Any]:
        spec = slo.spec
        _only(
            spec,
            (
                "description",
                "service",
                "indicator",
                "indicatorRef",
                "timeWindow",
                "budgetingMethod",
                "objectives",
                "alertPolicies",
            ),
            f"SLO {slo.name}: spec",
            "an OpenSLO v1 SLO",
        )
        _only(slo.metadata, ("name", "displayName", "labels", "annotations"), f"SLO {slo.name}: metadata", "metadata")
        service = _string(spec.get("service"), f"SLO {slo.name}: spec.service")
        method = spec.get("budgetingMethod")
        if method != OCCURRENCES:
            raise OpenSLOError(
                f"SLO {slo.name}: spec.budgetingMethod: {method!r} is not supported: SLOReview counts events "
                f"({OCCURRENCES})"
            )
        window = self.window(slo)
        sli, threshold = self.indicator(slo)
        percent, latency = self.objective(slo, threshold)
        if latency is not None:
            sli = SLISpec(latency=latency)
        if spec.get("alertPolicies"):
            self.warnings.append(
                f"SLO {slo.name}: spec.alertPolicies are not imported: SLOReview alerts on fixed multi-window "
                "burn rates (see infragenius slo rules)"
            )
        labels = _labels(slo.metadata.get("labels"), f"SLO {slo.name}: metadata.labels")
        annotations = _annotations(slo.metadata.get("annotations"), f"SLO {slo.name}: metadata.annotations")
        fields: dict[str, Any] = {"service": service, "objective": percent, "sli": sli, **window}
        extra = annotations.pop(SPEC_ANNOTATION, None)
        if extra is not None:
            fields.update(self.extra_fields(extra, slo.name))
        written_namespace = annotations.pop(NAMESPACE_ANNOTATION, None)
        if "displayName" in slo.metadata:
            annotations[DISPLAY_NAME_ANNOTATION] = _string(
                slo.metadata["displayName"], f"SLO {slo.name}: metadata.displayName"
            )
        if "description" in spec:
            annotations[DESCRIPTION_ANNOTATION] = _string(spec["description"], f"SLO {slo.name}: spec.description")
        try:
            review = SLOReviewSpec(**fields)
        except ValidationError as err:
            first = err.errors()[0]
            raise OpenSLOError(
                f"SLO {slo.name}: SLOReview spec.{'.'.join(str(p) for p in first['loc'])}: {first['msg']}"
            ) from None
        metadata: dict[str, Any] = {"name": slo.name}
        # As in `slo rules`: a namespace written into the document wins over the command line's default.
        chosen = written_namespace or namespace
        if chosen is not None:
            if not _DNS_LABEL.fullmatch(chosen):
                raise OpenSLOError(f"SLO {slo.name}: namespace: {chosen!r} is not a valid namespace")
            metadata["namespace"] = chosen
        if labels:
            metadata["labels"] = labels
        if annotations:
            metadata["annotations"] = annotations
        return {
            "apiVersion": API_VERSION,
            "kind": SLO_REVIEW.kind,
            "metadata": metadata,
            # exclude_unset: only what the OpenSLO document said, no defaults spelled out.
            "spec": review.model_dump(mode="json", by_alias=True, exclude_unset=True),
        }

    @staticmethod
    def extra_fields(text: str, name: str) -> dict[str, Any]:
        where = f"SLO {name}: metadata.annotations.{SPEC_ANNOTATION}"
        try:
            extra = json.loads(text)
        except ValueError as err:
            raise OpenSLOError(f"{where}: not JSON: {err}") from None
        _only(_mapping(extra, where), EXTRA_SPEC_FIELDS, where, "the SLOReview fields OpenSLO has no place for")
        return dict(extra)


def import_documents(documents: Iterable[object], namespace: str | None = None) -> ImportResult:
    """OpenSLO v1 documents (as loaded from YAML) -> SLOReview manifests, one per SLO, in input order.

    ``namespace`` is set on every manifest (else the ``infragenius.io/namespace`` annotation, else none).
    """
    if namespace is not None and not _DNS_LABEL.fullmatch(namespace):
        raise OpenSLOError(f"namespace: {namespace!r} is not a valid namespace")
    docs = [_header(doc, position) for position, doc in enumerate(documents, start=1) if doc is not None]
    importer = _Importer(docs)
    slos = [doc for doc in docs if doc.kind == "SLO"]
    if not slos:
        raise OpenSLOError("no OpenSLO v1 SLO documents in the input")
    manifests = [importer.slo(slo, namespace) for slo in slos]
    for doc in docs:
        if doc.kind in ALERT_KINDS:
            importer.warnings.append(
                f"{doc.kind} {doc.name}: not imported: SLOReview alerts on fixed multi-window burn rates "
                "(see infragenius slo rules)"
            )
        elif doc.kind == "DataSource" and doc.spec.get("connectionDetails"):
            importer.warnings.append(
                f"DataSource {doc.name}: spec.connectionDetails are not imported: the operator's Prometheus "
                "(or the infragenius.io/sloreview annotation's prometheus.url) is used"
            )
    return ImportResult(manifests=manifests, warnings=importer.warnings)


def import_text(text: str, namespace: str | None = None) -> ImportResult:
    return import_documents(load_yaml(text), namespace)


# --- export ---------------------------------------------------------------------------------------


def _metric(query: str) -> dict[str, Any]:
    return {"metricSource": {"type": PROMETHEUS, "spec": {"query": query}}}


def _target(objective: float) -> dict[str, float]:
    """``target`` when it reads back as exactly ``objective``; else ``targetPercent``, which is ``objective``."""
    target = float(Decimal(repr(objective)) / 100)
    if float(Decimal(repr(target)) * 100) == objective:
        return {"target": target}
    return {"targetPercent": objective}


def _indicator_spec(sli: SLISpec, where: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """(indicator spec, objective fields beyond the target)."""
    if sli.ratio is not None:
        check_query(sli.ratio.error_query, f"{where}.ratio.errorQuery")
        check_query(sli.ratio.total_query, f"{where}.ratio.totalQuery")
        ratio = {"counter": True, "bad": _metric(sli.ratio.error_query), "total": _metric(sli.ratio.total_query)}
        return {"ratioMetric": ratio}, {}
    if sli.raw is not None:
        return {"ratioMetric": {"rawType": "failure", "raw": _metric(sli.raw.error_ratio_query)}}, {}
    if sli.latency is not None:
        selector = sli.latency.selector
        if _LE_MATCHER.search(selector):
            raise OpenSLOError(f"{where}.latency.selector: an le matcher has no OpenSLO form")
        query = f"{sli.latency.metric}_bucket" + (f"{{{selector}}}" if selector else "")
        return {"thresholdMetric": _metric(query)}, {"op": "lte", "value": sli.latency.threshold_seconds}
    raise OpenSLOError(f"{where}: names no SLI type")


def _review(document: object, position: int) -> tuple[str, Mapping[str, Any], SLOReviewSpec]:
    where = f"document {position}"
    doc = _mapping(document, where)
    if doc.get("kind") != SLO_REVIEW.kind:
        raise OpenSLOError(f"{where}: kind: expected {SLO_REVIEW.kind!r}, got {doc.get('kind')!r}")
    if doc.get("apiVersion") != API_VERSION:
        raise OpenSLOError(f"{where}: apiVersion: expected {API_VERSION!r}, got {doc.get('apiVersion')!r}")
    metadata = _mapping(doc.get("metadata"), f"{where}: metadata")
    name = metadata.get("name")
    if not isinstance(name, str) or not _DNS_SUBDOMAIN.fullmatch(name):
        raise OpenSLOError(f"{where}: metadata.name: {name!r} is not a valid Kubernetes name")
    try:
        spec = SLOReviewSpec.model_validate(doc.get("spec"))
    except ValidationError as err:
        first = err.errors()[0]
        raise OpenSLOError(f"SLOReview {name}: spec.{'.'.join(str(p) for p in first['loc'])}: {first['msg']}") from None
    return name, metadata, spec


def _unwrap(documents: Iterable[object]) -> Iterator[object]:
    """``kubectl get sloreviews -o yaml`` prints a List; its items are the SLOReviews."""
    for doc in documents:
        if isinstance(doc, Mapping) and doc.get("kind") == "List" and isinstance(doc.get("items"), list):
            yield from doc["items"]
        elif doc is not None:
            yield doc


def _time_window(spec: SLOReviewSpec) -> dict[str, Any]:
    if spec.calendar is None:
        return {"duration": spec.window, "isRolling": True}
    calendar: dict[str, Any] = {"timeZone": spec.calendar.time_zone}
    if spec.calendar.start_time is not None:
        calendar["startTime"] = spec.calendar.start_time
    return {"duration": _CALENDAR_DURATION[spec.calendar.unit], "isRolling": False, "calendar": calendar}


def export_documents(documents: Iterable[object]) -> list[dict[str, Any]]:
    """SLOReview manifests -> OpenSLO v1: a ``Service`` per service (first use order), then one SLO each."""
    services: dict[str, dict[str, Any]] = {}
    slos: list[dict[str, Any]] = []
    seen: set[tuple[str | None, str]] = set()
    for position, document in enumerate(_unwrap(documents), start=1):
        name, metadata, spec = _review(document, position)
        where = f"SLOReview {name}"
        namespace = metadata.get("namespace")
        if namespace is not None and not (isinstance(namespace, str) and _DNS_LABEL.fullmatch(namespace)):
            raise OpenSLOError(f"{where}: metadata.namespace: {namespace!r} is not a valid namespace")
        if (namespace, name) in seen:
            raise OpenSLOError(f"{where}: metadata.name: defined twice")
        seen.add((namespace, name))
        labels = _labels(metadata.get("labels"), f"{where}: metadata.labels")
        annotations = _annotations(metadata.get("annotations"), f"{where}: metadata.annotations")
        annotations.pop(_LAST_APPLIED, None)
        for reserved in (SPEC_ANNOTATION, NAMESPACE_ANNOTATION):
            if reserved in annotations:
                raise OpenSLOError(f"{where}: metadata.annotations.{reserved}: reserved for the OpenSLO export")
        display_name = annotations.pop(DISPLAY_NAME_ANNOTATION, None)
        description = annotations.pop(DESCRIPTION_ANNOTATION, None)
        indicator, threshold = _indicator_spec(spec.sli, f"{where}: spec.sli")
        dumped = spec.model_dump(mode="json", by_alias=True, exclude_unset=True)
        extra = {key: dumped[key] for key in EXTRA_SPEC_FIELDS if key in dumped}
        if extra:
            annotations[SPEC_ANNOTATION] = json.dumps(extra, sort_keys=True, separators=(",", ":"))
        if namespace is not None:
            annotations[NAMESPACE_ANNOTATION] = namespace
        slo_metadata: dict[str, Any] = {"name": name}
        if display_name is not None:
            slo_metadata["displayName"] = display_name
        if labels:
            slo_metadata["labels"] = labels
        if annotations:
            slo_metadata["annotations"] = annotations
        slo_spec: dict[str, Any] = {}
        if description is not None:
            slo_spec["description"] = description
        slo_spec.update(
            {
                "service": spec.service,
                "indicator": {"metadata": {"name": f"{name}-sli"}, "spec": indicator},
                "timeWindow": [_time_window(spec)],
                "budgetingMethod": OCCURRENCES,
                "objectives": [{**threshold, **_target(spec.objective)}],
            }
        )
        slos.append({"apiVersion": OPENSLO_API_VERSION, "kind": "SLO", "metadata": slo_metadata, "spec": slo_spec})
        # spec.service may name a Service; a service name that is no valid object name is written without one.
        if _DNS_SUBDOMAIN.fullmatch(spec.service):
            services.setdefault(
                spec.service,
                {"apiVersion": OPENSLO_API_VERSION, "kind": "Service", "metadata": {"name": spec.service}, "spec": {}},
            )
    if not slos:
        raise OpenSLOError("no SLOReview documents in the input")
    return [*services.values(), *slos]


def export_text(text: str) -> list[dict[str, Any]]:
    return export_documents(load_yaml(text))
