"""crds/ is generated from the pydantic models and must stay in sync with them."""

from __future__ import annotations

from pathlib import Path

import yaml

from infragenius.crdgen import all_crds, render
from infragenius.detectors.registry import DETECTORS
from infragenius.models.analysis import DetectorName

ROOT = Path(__file__).resolve().parents[2]


def test_crds_directory_matches_the_models() -> None:
    for filename, crd in all_crds().items():
        path = ROOT / "crds" / filename
        assert path.exists(), f"{path} missing: run `infragenius crds`"
        assert path.read_text() == render(crd), f"{path} is stale: run `infragenius crds`"


def test_no_stray_files_in_crds() -> None:
    assert sorted(p.name for p in (ROOT / "crds").glob("*.yaml")) == sorted(all_crds())


def _walk(schema: dict, path: str = "") -> list[str]:
    """Paths of constructs a structural schema forbids."""
    bad = []
    for key in ("anyOf", "oneOf", "allOf", "$ref", "$defs", "title"):
        if key in schema:
            bad.append(f"{path}:{key}")
    if schema.get("additionalProperties") is False:
        bad.append(f"{path}:additionalProperties=false")
    for name, sub in (schema.get("properties") or {}).items():
        bad += _walk(sub, f"{path}.{name}")
    if isinstance(schema.get("items"), dict):
        bad += _walk(schema["items"], f"{path}[]")
    if "properties" in schema and schema.get("type") != "object":
        bad.append(f"{path}:properties without type object")
    return bad


def test_schema_is_structural_and_carries_validation() -> None:
    crd = all_crds()["analyses.infragenius.io.yaml"]
    version = crd["spec"]["versions"][0]
    schema = version["schema"]["openAPIV3Schema"]
    assert _walk(schema) == []
    spec = schema["properties"]["spec"]
    assert spec["properties"]["minSeverity"]["enum"] == ["critical", "warning", "info"]
    assert spec["properties"]["targetNamespace"]["pattern"].startswith("^[a-z0-9]")
    rules = [r["rule"] for r in spec["x-kubernetes-validations"]]
    assert any("duration(self.interval)" in r for r in rules)
    assert spec["properties"]["detectors"]["x-kubernetes-validations"][0]["message"] == (
        "a detector cannot be both included and excluded"
    )
    assert crd["spec"]["names"]["categories"] == ["infragenius"]
    assert version["subresources"] == {"status": {}}
    assert [c["name"] for c in version["additionalPrinterColumns"]] == [
        "Phase",
        "New",
        "Critical",
        "Warnings",
        "Summary",
        "Age",
    ]


def test_detector_enum_matches_the_registry() -> None:
    assert [d.value for d in DetectorName] == list(DETECTORS)


def test_rendered_yaml_round_trips() -> None:
    for crd in all_crds().values():
        assert yaml.safe_load(render(crd)) == crd


def test_sloreview_schema_is_structural_and_carries_validation() -> None:
    crd = all_crds()["sloreviews.infragenius.io.yaml"]
    assert crd["metadata"]["name"] == "sloreviews.infragenius.io"
    version = crd["spec"]["versions"][0]
    schema = version["schema"]["openAPIV3Schema"]
    assert _walk(schema) == []
    spec = schema["properties"]["spec"]
    assert spec["required"] == ["service", "objective", "sli"]
    # OpenAPI v3.0 form of an open interval: Kubernetes rejects JSON Schema's numeric exclusiveMinimum.
    objective = spec["properties"]["objective"]
    assert (
        objective["minimum"],
        objective["exclusiveMinimum"],
        objective["maximum"],
        objective["exclusiveMaximum"],
    ) == (0, True, 100, True)
    assert spec["properties"]["window"]["pattern"] == "^[1-9][0-9]{0,2}(d|w)$"
    sli = spec["properties"]["sli"]
    assert "exactly one SLI type" in sli["x-kubernetes-validations"][0]["message"]
    assert sli["properties"]["ratio"]["properties"]["errorQuery"]["minLength"] == 1
    assert sli["properties"]["raw"]["x-kubernetes-validations"][0]["rule"] == "self.errorRatioQuery.contains('$window')"
    assert any("duration(self.interval)" in r["rule"] for r in spec["x-kubernetes-validations"])
    status = schema["properties"]["status"]["properties"]
    assert status["verdict"]["enum"] == ["Healthy", "AtRisk", "Breaching", "Exhausted"]
    assert list(status["burnRates"]["properties"]) == ["5m", "30m", "1h", "2h", "6h", "1d", "3d"]
    assert status["triggers"]["maxItems"] == 20
    assert version["subresources"] == {"status": {}}
    assert crd["spec"]["names"]["shortNames"] == ["slo"]
    columns = version["additionalPrinterColumns"]
    assert [c["name"] for c in columns] == ["Objective", "Budget left", "Burn (1h)", "Verdict", "Age"]
    assert [c["jsonPath"] for c in columns[:4]] == [
        ".spec.objective",
        ".status.errorBudget.remainingPercent",
        ".status.burnRates.1h",
        ".status.verdict",
    ]


def test_incident_report_crd() -> None:
    crd = all_crds()["incidentreports.infragenius.io.yaml"]
    version = crd["spec"]["versions"][0]
    schema = version["schema"]["openAPIV3Schema"]
    assert _walk(schema) == []
    spec = schema["properties"]["spec"]
    rules = [r["message"] for r in spec["x-kubernetes-validations"]]
    assert "give either since, or start and end, not both" in rules
    assert spec["properties"]["severity"]["enum"] == ["SEV1", "SEV2", "SEV3", "SEV4"]
    kinds = schema["properties"]["status"]["properties"]["timeline"]["items"]["properties"]["kind"]["enum"]
    assert "Rollout" in kinds and "NodeCondition" in kinds
    assert [c["name"] for c in version["additionalPrinterColumns"]] == ["Phase", "Severity", "Suspected cause", "Age"]
