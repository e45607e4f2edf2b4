"""Kopf's record of the handled change, carried by a run's final status write (runs.handled)."""

from __future__ import annotations

import json
from typing import Any

import kopf

from infragenius.runs import lifecycle as runs
from infragenius.runs.handled import FIELD, HandledInStatus

PREFIX = "kopf.infragenius.io"


def analysis(rv: str = "10", **status: Any) -> kopf.Body:
    raw = {
        "apiVersion": "infragenius.io/v1alpha1",
        "kind": "Analysis",
        "metadata": {
            "name": "a",
            "namespace": "ns",
            "uid": "u-1",
            "resourceVersion": rv,
            "generation": 2,
            "labels": {"team": "web"},
            "annotations": {"kopf.infragenius.io/analysis_changed": "{}", "note": "x"},
        },
        "spec": {"minSeverity": "warning"},
        "status": status,
    }
    return kopf.Body(raw)


def test_a_carried_record_is_what_kopf_would_store_and_kopf_then_writes_nothing() -> None:
    storage = HandledInStatus(PREFIX)
    body = analysis()
    essence = storage.build(body=body)
    carried = storage.carry(body)
    assert carried is not None
    assert json.loads(carried.fragment()[FIELD]) == essence
    carried.landed()
    patch = kopf.Patch()
    storage.store(body=body, patch=patch, essence=essence)
    assert not patch  # the run's final write holds it: no PATCH of Kopf's own
    # Read back from a status holding it, the record equals the body's essence: nothing changed.
    written = analysis("12", **carried.fragment())
    assert storage.fetch(body=written) == storage.build(body=written)
    assert HandledInStatus(PREFIX).fetch(body=written) == essence  # also for a fresh operator (from status)


def test_queued_events_of_the_runs_own_writes_are_not_new_changes() -> None:
    """The Running write's event may be handled after the run ended; its body has no record yet."""
    storage = HandledInStatus(PREFIX)
    created = analysis("10")
    assert storage.fetch(body=created) is None  # Kopf: a new object
    essence = storage.build(body=created)
    carried = storage.carry(created)
    assert carried is not None
    carried.landed()
    storage.store(body=created, patch=kopf.Patch(), essence=essence)
    running = analysis("11", phase="Running")
    assert storage.fetch(body=running) == storage.build(body=running)  # Kopf: nothing changed


def test_without_a_landed_write_kopf_stores_the_record_itself() -> None:
    storage = HandledInStatus(PREFIX)
    body = analysis()
    essence = storage.build(body=body)
    assert storage.carry(body) is not None  # carried, but the final write never happened (a retry, a 404)
    patch = kopf.Patch()
    storage.store(body=body, patch=patch, essence=essence)
    assert json.loads(patch["status"][FIELD]) == essence


def test_a_landed_record_of_another_change_does_not_stand_in_for_this_one() -> None:
    storage = HandledInStatus(PREFIX)
    old = analysis("10")
    carried = storage.carry(old) if storage.build(body=old) else None
    assert carried is not None
    carried.landed()
    newer = kopf.Body({**old, "spec": {"minSeverity": "critical"}})
    essence = storage.build(body=newer)
    patch = kopf.Patch()
    storage.store(body=newer, patch=patch, essence=essence)
    assert json.loads(patch["status"][FIELD])["spec"] == {"minSeverity": "critical"}


def test_nothing_is_carried_for_a_version_kopf_did_not_build() -> None:
    storage = HandledInStatus(PREFIX)
    storage.build(body=analysis("10"))
    assert storage.carry(analysis("11")) is None  # e.g. a timer's newer body
    assert HandledInStatus(PREFIX).carry(analysis("10")) is None


def test_the_annotation_earlier_versions_wrote_is_still_read() -> None:
    legacy = kopf.AnnotationsDiffBaseStorage(prefix="kopf.infragenius.io", key="last-handled-configuration")
    storage = HandledInStatus(PREFIX, legacy=legacy)
    body = analysis()
    essence = storage.build(body=body)
    old = kopf.Body(
        {
            **body,
            "metadata": {
                **body["metadata"],
                "annotations": {
                    **body["metadata"]["annotations"],
                    "kopf.infragenius.io/last-handled-configuration": json.dumps(essence),
                },
            },
        }
    )
    assert storage.fetch(body=old) == essence


def test_the_change_handler_asks_for_one_run_per_change() -> None:
    meta = {"generation": 2, "annotations": {"infragenius.io/rerun": "t2"}}
    done = {"phase": "Completed", "observedGeneration": 2, "rerunToken": "t1"}
    # A new spec wins over a rerun in the same change (its Running write records the token).
    assert runs.change_request({"metadata": meta, "status": {**done, "observedGeneration": 1}}, "update") == (
        "spec",
        "update",
    )
    assert runs.change_request({"metadata": meta, "status": {}}, "create") == ("spec", "create")
    assert runs.change_request({"metadata": meta, "status": done}, "update") == ("rerun:t2", "rerun annotation")
    # Labels or other annotations changed, the rerun token already handled: nothing to run.
    assert runs.change_request({"metadata": meta, "status": {**done, "rerunToken": "t2"}}, "update") is None
    # A run that failed for good for this generation waits for a spec change or a rerun.
    failed = {"phase": "Failed", "observedGeneration": 2, "rerunToken": "t2"}
    assert runs.change_request({"metadata": meta, "status": failed}, "update") is None


def test_kopf_retry_progress_is_not_part_of_a_change() -> None:
    storage = HandledInStatus(PREFIX)
    body = analysis()
    essence = storage.build(body=body)
    assert essence["metadata"]["annotations"] == {"note": "x"}
    retried = kopf.Body(
        {**body, "metadata": {**body["metadata"], "annotations": {"note": "x", f"{PREFIX}/touch-dummy": "now"}}}
    )
    assert storage.build(body=retried) == essence
