"""PDB detector: budgets that block every eviction, select nothing, or cannot be computed; disruptionsAllowed>=1
is healthy.
"""

from __future__ import annotations

from infragenius.detectors.pdb import DETECTOR
from infragenius.kube.selectors import selector_text
from infragenius.models.findings import Severity
from tests.unit.factories import cond, ev, healthy_objects, only, pdb, snap


def test_contract() -> None:
    assert DETECTOR.name == "pdb"
    assert DETECTOR.kinds == frozenset({"PodDisruptionBudget"})


def test_healthy_namespace_gives_nothing() -> None:
    assert DETECTOR.detect(snap(healthy_objects())) == []
    assert DETECTOR.detect(snap(pdb("web", min_available=None, max_unavailable=1, allowed=1))) == []


def test_budget_that_blocks_all_evictions() -> None:
    f = only(DETECTOR.detect(snap(pdb("web", min_available=3, allowed=0, healthy=3, desired=3, expected=3))))
    assert f.severity is Severity.warning
    assert (f.resource.kind, f.resource.name) == ("PodDisruptionBudget", "web")
    assert f.title == (
        "PDB web allows no voluntary disruptions (minAvailable=3 with 3 pods): "
        "node drains and evictions of these pods will block"
    )
    e = ev(f)
    assert e["spec.minAvailable"] == "3"
    assert e["status.disruptionsAllowed"] == "0"
    assert e["spec.selector"] == "app=web"
    # maxUnavailable: 0 does the same; same id as the counts change.
    g = only(
        DETECTOR.detect(
            snap(pdb("web", min_available=None, max_unavailable=0, allowed=0, healthy=5, desired=5, expected=5))
        )
    )
    assert g.id == f.id and "maxUnavailable=0 with 5 pods" in g.title


def test_selector_matching_nothing() -> None:
    f = only(DETECTOR.detect(snap(pdb("web", allowed=0, healthy=0, desired=0, expected=0))))
    assert f.severity is Severity.warning
    assert f.title == "PDB web selects no pods (selector app=web)"


def test_unhealthy_workload_is_only_info() -> None:
    f = only(DETECTOR.detect(snap(pdb("web", allowed=0, healthy=1, desired=2, expected=3))))
    assert f.severity is Severity.info
    assert f.title.startswith("PDB web has 1 healthy pods, fewer than the 2 it requires")


def test_sync_failed() -> None:
    msg = 'found no controllers for pod "worker"'
    failed = pdb("web", min_available=None, max_unavailable="50%", allowed=0, healthy=0, desired=0, expected=0,
                 conditions=[cond("DisruptionAllowed", "False", "SyncFailed", msg)])  # fmt: skip
    f = only(DETECTOR.detect(snap(failed)))
    assert f.severity is Severity.warning
    assert f.title == f"PDB web cannot be evaluated: {msg}"
    assert ev(f)["spec.maxUnavailable"] == "50%"


def test_unobserved_status_says_nothing() -> None:
    # Before the disruption controller syncs, the API serves zeros for every counter.
    assert DETECTOR.detect(snap(pdb("web", allowed=0, healthy=0, desired=0, expected=0, observed=False))) == []
    bare = pdb("web")
    bare.pop("status")
    assert DETECTOR.detect(snap(bare)) == []


def test_selector_text() -> None:
    sel = {"matchLabels": {"app": "web", "tier": "fe"},
           "matchExpressions": [{"key": "env", "operator": "In", "values": ["prod", "stage"]},
                                {"key": "canary", "operator": "DoesNotExist"}]}  # fmt: skip
    assert selector_text(sel) == "app=web,tier=fe,env in (prod,stage),!canary"
    assert selector_text({}) == "<none>"


def test_same_snapshot_twice_and_missing_kind() -> None:
    s = snap(pdb("web", min_available=3, allowed=0, healthy=3, desired=3, expected=3))
    assert DETECTOR.detect(s) == DETECTOR.detect(s) != []
    assert DETECTOR.detect(snap(pdb("web", allowed=0), without=("PodDisruptionBudget",))) == []
