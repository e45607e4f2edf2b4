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
    assert [c["name"] for c in version["additionalPrinterColumns"]] == ["Phase", "Critical", "Warnings", "Summary", "Age"]


def test_detector_enum_matches_the_registry() -> None:
    assert [d.value for d in DetectorName] == list(DETECTORS)


def test_rendered_yaml_round_trips() -> None:
    for crd in all_crds().values():
        assert yaml.safe_load(render(crd)) == crd
