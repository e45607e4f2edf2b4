"""The Argo CD health check (docs/argocd/health.lua), executed with a real Lua interpreter (lupa)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
LUA = ROOT / "docs" / "argocd" / "health.lua"
KINDS = ("Analysis", "SLOReview", "IncidentReport")


def _health(obj: dict[str, Any]) -> tuple[str, str]:
    import lupa  # in the test extra: a missing lupa fails, never skips

    lua = lupa.LuaRuntime(unpack_returned_tuples=True)
    lua.globals().obj = lua.table_from(obj, recursive=True)
    result = lua.execute(LUA.read_text())
    return str(result["status"]), str(result["message"])


def _obj(kind: str, status: dict[str, Any] | None, generation: int = 1) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "apiVersion": "infragenius.io/v1alpha1",
        "kind": kind,
        "metadata": {"name": "x", "namespace": "default", "generation": generation},
    }
    if status is not None:
        obj["status"] = status
    return obj


def _ready(status: str, reason: str = "R", message: str = "") -> dict[str, Any]:
    return {"type": "Ready", "status": status, "reason": reason, "message": message}


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(
    ("status", "generation", "expected"),
    [
        (None, 1, "Progressing"),
        ({"phase": "Pending"}, 1, "Progressing"),
        ({"phase": "Running", "observedGeneration": 1, "conditions": [_ready("Unknown")]}, 1, "Progressing"),
        (
            {"phase": "Completed", "observedGeneration": 1, "conditions": [_ready("True", message="3 findings")]},
            1,
            "Healthy",
        ),
        ({"phase": "Completed", "observedGeneration": 1, "conditions": [_ready("False", "Invalid")]}, 1, "Degraded"),
        ({"phase": "Failed", "observedGeneration": 1, "conditions": [_ready("False", message="boom")]}, 1, "Degraded"),
        ({"phase": "Failed", "observedGeneration": 1}, 1, "Degraded"),
        # A spec change the operator has not seen yet: the old Ready does not count.
        ({"phase": "Completed", "observedGeneration": 1, "conditions": [_ready("True")]}, 2, "Progressing"),
        # Other conditions are ignored.
        ({"phase": "Running", "conditions": [{"type": "Stalled", "status": "True"}]}, 1, "Progressing"),
    ],
)
def test_health_maps_phase_and_ready(kind: str, status: dict[str, Any] | None, generation: int, expected: str) -> None:
    health, message = _health(_obj(kind, status, generation))
    assert health == expected
    assert message


def test_health_carries_the_ready_message() -> None:
    status = {
        "phase": "Failed",
        "observedGeneration": 1,
        "conditions": [_ready("False", message="Prometheus unreachable")],
    }
    assert _health(_obj("SLOReview", status)) == ("Degraded", "Prometheus unreachable")


def test_argocd_cm_snippet_embeds_the_script_for_every_kind() -> None:
    cm = yaml.safe_load((ROOT / "docs" / "argocd" / "argocd-cm.yaml").read_text())
    assert cm["metadata"]["name"] == "argocd-cm"
    script = LUA.read_text()
    for kind in KINDS:
        assert cm["data"][f"resource.customizations.health.infragenius.io_{kind}"] == script, (
            "regenerate docs/argocd/argocd-cm.yaml from health.lua"
        )
    # The kinds really are ours.
    crds = [yaml.safe_load(p.read_text()) for p in (ROOT / "crds").glob("*.yaml")]
    crd_kinds = {c["spec"]["names"]["kind"] for c in crds if c["spec"]["group"] == "infragenius.io"}
    assert set(KINDS) == crd_kinds


def test_argocd_application_example_installs_the_chart() -> None:
    app = yaml.safe_load((ROOT / "examples" / "argocd-application.yaml").read_text())
    assert app["kind"] == "Application"
    source = app["spec"]["source"]
    assert (ROOT / source["path"] / "Chart.yaml").exists()
    chart = yaml.safe_load((ROOT / source["path"] / "Chart.yaml").read_text())
    assert chart["name"] == "infragenius-operator"
