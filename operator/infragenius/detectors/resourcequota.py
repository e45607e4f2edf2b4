"""ResourceQuotas that are exhausted (new objects are rejected) or nearly so."""

from __future__ import annotations

from decimal import Decimal

from infragenius.detectors.base import finding
from infragenius.kube.meta import name_of, namespace_of, ref_of
from infragenius.kube.quantity import quantity_or_none
from infragenius.models.findings import Finding, Severity
from infragenius.snapshot import Snapshot

DOCS = "https://kubernetes.io/docs/concepts/policy/resource-quotas/"
NEAR = Decimal("0.9")


class ResourcequotaDetector:
    name: str = "resourcequota"
    kinds: frozenset[str] = frozenset({"ResourceQuota"})

    def detect(self, snapshot: Snapshot) -> list[Finding]:
        findings: list[Finding] = []
        for quota in snapshot.items("ResourceQuota"):
            status = quota.get("status") or {}
            hard, used = status.get("hard") or {}, status.get("used") or {}
            namespace, name = namespace_of(quota), name_of(quota)
            for resource in sorted(hard):
                limit, current = quantity_or_none(hard[resource]), quantity_or_none(used.get(resource))
                # hard=0 deliberately forbids a resource (e.g. services.loadbalancers: 0); not pressure.
                if limit is None or current is None or limit <= 0:
                    continue
                ratio = current / limit
                if ratio < NEAR:
                    continue
                full = current >= limit
                what = "pods" if resource in ("pods", "count/pods") else "objects"
                title = (
                    f"ResourceQuota {name}: {resource} is exhausted ({used[resource]} of {hard[resource]}); "
                    f"new {what} that need it are rejected"
                    if full
                    else f"ResourceQuota {name}: {resource} is at {ratio:.0%} ({used[resource]} of {hard[resource]})"
                )
                findings.append(
                    finding(
                        detector=self.name,
                        severity=Severity.warning if full else Severity.info,
                        resource=ref_of(quota, "ResourceQuota"),
                        owners=snapshot.owner_chain(quota),
                        problem=f"Quota:{resource}",  # same id whether near or at the limit
                        title=title,
                        evidence=[
                            (f"status.used[{resource}]", used[resource]),
                            (f"status.hard[{resource}]", hard[resource]),
                            ("usage", f"{ratio:.0%}"),
                        ],
                        remediation=(
                            f"kubectl -n {namespace} describe resourcequota {name}. "
                            "Lower requests or replicas, delete unused "
                            f"objects, or raise spec.hard[{resource}] if the namespace legitimately needs more."
                        ),
                        docs=DOCS,
                    )
                )
        return findings


DETECTOR = ResourcequotaDetector()
