"""What the server's own service account needs (the chart's ClusterRole for `infragenius serve`).

Reads: one cluster-wide LIST and WATCH per kind for the cache. Writes: create the two kinds callers may
trigger. Reviews: TokenReview to authenticate Kubernetes callers, SubjectAccessReview to authorize them.
"""

from __future__ import annotations

from typing import Any

from infragenius.models.api import ANALYSIS, GROUP, INCIDENT_REPORT, SLO_REVIEW

SERVER_RULES: list[dict[str, Any]] = [
    {
        "apiGroups": [GROUP],
        "resources": [ANALYSIS.plural, SLO_REVIEW.plural, INCIDENT_REPORT.plural],
        "verbs": ["get", "list", "watch"],
    },
    {"apiGroups": [GROUP], "resources": [ANALYSIS.plural, INCIDENT_REPORT.plural], "verbs": ["create"]},
    {"apiGroups": ["authentication.k8s.io"], "resources": ["tokenreviews"], "verbs": ["create"]},
    {"apiGroups": ["authorization.k8s.io"], "resources": ["subjectaccessreviews"], "verbs": ["create"]},
]
