"""Generate CustomResourceDefinitions from the pydantic models (the single source of truth)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel

from infragenius.models import analysis, incident, slo
from infragenius.models.api import ANALYSIS, GROUP, INCIDENT_REPORT, SLO_REVIEW, VERSION, CustomResourceKind

_DROP = {"title", "$defs"}


def _openapi(schema: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    """Turn a pydantic JSON schema into a structural OpenAPI v3 schema Kubernetes accepts."""
    if "$ref" in schema:
        target = defs[schema["$ref"].rsplit("/", 1)[-1]]
        siblings = {k: v for k, v in schema.items() if k != "$ref"}
        return _openapi({**target, **siblings}, defs)
    if "anyOf" in schema:
        options = [s for s in schema["anyOf"] if s.get("type") != "null"]
        if len(options) != 1:
            raise ValueError(f"cannot express anyOf with {len(options)} non-null options in a structural schema")
        merged = {**options[0], **{k: v for k, v in schema.items() if k not in ("anyOf", "default")}}
        if schema.get("default") is not None:
            merged["default"] = schema["default"]
        return _openapi(merged, defs)
    out: dict[str, Any] = {}
    for key, value in schema.items():
        # additionalProperties: false is not structural; the API server prunes and kubectl rejects unknown fields.
        if key in _DROP or (key == "default" and value is None) or (key == "additionalProperties" and value is False):
            continue
        if key == "properties":
            out[key] = {name: _openapi(sub, defs) for name, sub in value.items()}
        elif key == "items" or (key == "additionalProperties" and isinstance(value, dict)):
            out[key] = _openapi(value, defs)
        elif key == "const":
            out["enum"] = [value]
        elif key in ("exclusiveMinimum", "exclusiveMaximum") and not isinstance(value, bool):
            # JSON Schema's numeric form; OpenAPI v3.0 (what Kubernetes reads) wants the bound plus a boolean.
            out["minimum" if key == "exclusiveMinimum" else "maximum"] = value
            out[key] = True
        else:
            out[key] = value
    if "properties" in out:
        out.setdefault("type", "object")
    return out


def model_schema(model: type[BaseModel]) -> dict[str, Any]:
    raw = model.model_json_schema(by_alias=True, mode="serialization")
    return _openapi(raw, raw.get("$defs", {}))


def _crd(
    *,
    resource: CustomResourceKind,
    singular: str,
    short_names: list[str],
    spec: type[BaseModel],
    status: type[BaseModel],
    columns: list[dict[str, Any]],
) -> dict[str, Any]:
    kind, plural = resource.kind, resource.plural
    status_schema = model_schema(status)
    status_schema.pop("additionalProperties", None)
    spec_schema = model_schema(spec)
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": f"{plural}.{GROUP}",
            "labels": {
                "app.kubernetes.io/part-of": "infragenius",
                "app.kubernetes.io/managed-by": "infragenius-crdgen",
            },
        },
        "spec": {
            "group": GROUP,
            "scope": "Namespaced",
            "names": {
                "kind": kind,
                "listKind": f"{kind}List",
                "plural": plural,
                "singular": singular,
                "shortNames": short_names,
                "categories": ["infragenius"],
            },
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": [
                        *columns,
                        {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
                    ],
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "properties": {
                                "apiVersion": {"type": "string"},
                                "kind": {"type": "string"},
                                "metadata": {"type": "object"},
                                "spec": spec_schema,
                                "status": status_schema,
                            },
                        }
                    },
                }
            ],
        },
    }


def analysis_crd() -> dict[str, Any]:
    return _crd(
        resource=ANALYSIS,
        singular="analysis",
        short_names=["ana"],
        spec=analysis.AnalysisSpec,
        status=analysis.AnalysisStatus,
        columns=[
            {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
            {"name": "New", "type": "integer", "jsonPath": ".status.lifecycle.counts.new"},
            {"name": "Critical", "type": "integer", "jsonPath": ".status.counts.critical"},
            {"name": "Warnings", "type": "integer", "jsonPath": ".status.counts.warning"},
            {"name": "Summary", "type": "string", "jsonPath": ".status.summary"},
        ],
    )


def slo_review_crd() -> dict[str, Any]:
    return _crd(
        resource=SLO_REVIEW,
        singular="sloreview",
        short_names=["slo"],
        spec=slo.SLOReviewSpec,
        status=slo.SLOReviewStatus,
        columns=[
            {"name": "Objective", "type": "number", "jsonPath": ".spec.objective"},
            {"name": "Budget left", "type": "number", "jsonPath": ".status.errorBudget.remainingPercent"},
            {"name": "Burn (1h)", "type": "number", "jsonPath": ".status.burnRates.1h"},
            {"name": "Verdict", "type": "string", "jsonPath": ".status.verdict"},
        ],
    )


def incident_report_crd() -> dict[str, Any]:
    return _crd(
        resource=INCIDENT_REPORT,
        singular="incidentreport",
        short_names=["ir"],
        spec=incident.IncidentReportSpec,
        status=incident.IncidentReportStatus,
        columns=[
            {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
            {"name": "Severity", "type": "string", "jsonPath": ".spec.severity"},
            {"name": "Suspected cause", "type": "string", "jsonPath": ".status.topCause"},
        ],
    )


def peering_crd(scope: str) -> dict[str, Any]:
    """Kopf's peering kinds (kopf.dev), where replicas record liveness and priority so one is active.

    Kopf owns the content (status maps operator ids to priority, lifetime and last-seen), so the
    schema only names the kind and keeps whatever Kopf writes.
    """
    kind = "ClusterKopfPeering" if scope == "Cluster" else "KopfPeering"
    plural = kind.lower() + "s"
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.kopf.dev"},
        "spec": {
            "group": "kopf.dev",
            "scope": scope,
            "names": {"kind": kind, "plural": plural, "singular": kind.lower()},
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "properties": {
                                "spec": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
                                "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
                            },
                        }
                    },
                }
            ],
        },
    }


def all_crds() -> dict[str, dict[str, Any]]:
    """File name -> CRD, for every kind the operator serves, and Kopf's peering kinds for HA."""
    return {
        "analyses.infragenius.io.yaml": analysis_crd(),
        "sloreviews.infragenius.io.yaml": slo_review_crd(),
        "incidentreports.infragenius.io.yaml": incident_report_crd(),
        "clusterkopfpeerings.kopf.dev.yaml": peering_crd("Cluster"),
        "kopfpeerings.kopf.dev.yaml": peering_crd("Namespaced"),
    }


def render(crd: dict[str, Any]) -> str:
    header = "# Generated by `infragenius crds` from the pydantic models; do not edit by hand.\n"
    return header + yaml.safe_dump(crd, sort_keys=False, width=120)


def write_all(directory: Path) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for filename, crd in all_crds().items():
        path = directory / filename
        path.write_text(render(crd))
        written.append(path)
    return written
