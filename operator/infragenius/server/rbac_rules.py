"""What the server's own service account needs (the chart's ClusterRole for `infragenius serve`).

Reads: one cluster-wide LIST and WATCH per kind for the cache. Writes: create the two kinds callers may
trigger. Reviews: TokenReview to authenticate Kubernetes callers, SubjectAccessReview to authorize them.
"""

from __future__ import annotations

from typing import Any

from infragenius.models.api import ANALYSIS, GROUP, INCIDENT_REPORT, SLO_REVIEW
from infragenius.stack.apply import POSTGRES_SECRET, REDIS_SECRET

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

#: A Role in the operator's namespace, when the server finds the deployed stack's Postgres and Redis the way
#: the operator does (their Secrets); not needed with INFRAGENIUS_POSTGRES_URL and INFRAGENIUS_REDIS_URL.
SERVER_STACK_RULES: list[dict[str, Any]] = [
    {"apiGroups": [""], "resources": ["secrets"], "resourceNames": [POSTGRES_SECRET, REDIS_SECRET], "verbs": ["get"]},
]
