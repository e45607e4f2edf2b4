"""Evidence and wording every detector shares: short titles, example lists, event summaries."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence

from infragenius.kube.events import event_count, event_last_seen, event_message, involved_object
from infragenius.kube.meta import Obj, name_of
from infragenius.kube.pods import template_containers
from infragenius.snapshot import ContainerLog

DOCS = "https://kubernetes.io/docs"
#: Example names in one piece of evidence.
EXAMPLES = 5


def shorten(text: str, limit: int = 140) -> str:
    """Keep titles one line and readable; the full text stays in the evidence."""
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def examples(names: Sequence[str], limit: int = EXAMPLES) -> str:
    """Up to ``limit`` names, saying how many more there are, so evidence stays short."""
    shown = ", ".join(names[:limit])
    return f"{shown} (+{len(names) - limit} more)" if len(names) > limit else shown


def kubectl_ref(kind: str, name: str) -> str:
    """`deployment/web` style argument for kubectl commands in remediations."""
    return f"{kind.lower()}/{name}"


def image_evidence(workload: Obj, kind: str) -> list[tuple[str, str]]:
    """(field path, image) for each container of a workload's pod template."""
    prefix = f"{kind}/{name_of(workload)}.spec.template.spec.containers"
    return [(f"{prefix}[{c.get('name', '?')}].image", c.get("image", "")) for c in template_containers(workload)]


def event_evidence(
    events: Iterable[Obj], reasons: Collection[str] | None = None, limit: int = 4
) -> list[tuple[str, str]]:
    """Warning events summed per reason, most frequent first, with the newest message.

    ``reasons`` keeps the evidence on topic (an OOM finding should not carry an old
    FailedScheduling event); None takes every reason.
    """
    totals: dict[str, list] = {}  # reason -> [count, object names, newest time, newest message]
    for event in events:
        reason = event.get("reason") or ""
        if reasons is not None and reason not in reasons:
            continue
        name = involved_object(event).get("name", "")
        when = event_last_seen(event)
        entry = totals.get(reason)
        if entry is None:
            totals[reason] = [event_count(event), {name}, when, event_message(event)]
            continue
        entry[0] += event_count(event)
        entry[1].add(name)
        if when is not None and (entry[2] is None or when > entry[2]):
            entry[2], entry[3] = when, event_message(event)
    ordered = sorted(totals.items(), key=lambda kv: (-kv[1][0], kv[0]))[:limit]
    evidence: list[tuple[str, str]] = []
    for reason, (count, names, _when, message) in ordered:
        spread = f" across {len(names)} objects" if len(names) > 1 else ""
        evidence.append((f"event:{reason}", f"count={count}{spread}: {message}".rstrip(": ")))
    return evidence


#: Characters of log lines in one piece of evidence (an evidence value holds at most 1024).
LOG_EVIDENCE_CHARS = 900


def log_evidence(container: str, log: ContainerLog, prefix: str = "") -> tuple[str, str]:
    """(``log:<container>``, the excerpt's lines, one per line, whole lines only) or why there is none."""
    source = f"log:{container}" + (" (previous run)" if log.previous else "")
    if log.error is not None:
        return source, f"{prefix}unavailable: {log.error}"
    if not log.lines:
        return source, f"{prefix}(no output)"
    head = prefix if log.errors_found else f"{prefix}(no error lines; last lines) "
    kept: list[str] = []
    used = len(head)
    for line in log.lines:
        if kept and used + len(line) + 1 > LOG_EVIDENCE_CHARS:
            break
        kept.append(line)
        used += len(line) + 1
    return source, head + "\n".join(kept)
