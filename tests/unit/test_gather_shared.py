"""Shared reads: analyses close together share a LIST only if it started after they were observed."""

from __future__ import annotations

import asyncio
import time

import pytest

from infragenius.gather.kube import LAST_APPLIED
from infragenius.gather.shared import SharedReads


class Source:
    """Counts fetches; each answers with its own number, so sharing is visible."""

    def __init__(self, delay: float = 0.05, fail: bool = False) -> None:
        self.calls, self.delay, self.fail = 0, delay, fail

    async def fetch(self) -> list[int]:
        self.calls += 1
        number = self.calls
        await asyncio.sleep(self.delay)
        if self.fail:
            raise RuntimeError(f"read {number} failed")
        return [number]


@pytest.mark.asyncio
async def test_concurrent_callers_join_one_read_and_later_ones_reuse_it() -> None:
    reads, source = SharedReads(keep_seconds=5), Source()
    observed = time.monotonic()
    results = await asyncio.gather(*(reads.read("pods", source.fetch, observed) for _ in range(5)))
    assert source.calls == 1 and results == [[1]] * 5
    assert await reads.read("pods", source.fetch, observed) == [1] and source.calls == 1
    assert (reads.started, reads.shared) == (1, 5)


@pytest.mark.asyncio
async def test_a_read_older_than_the_request_is_never_reused() -> None:
    reads, source = SharedReads(keep_seconds=5), Source()
    await reads.read("pods", source.fetch, time.monotonic())
    # Observed after that read started: the object it asks about may be newer than the read.
    assert await reads.read("pods", source.fetch, time.monotonic()) == [2]
    assert await reads.read("pods", source.fetch, None) == [3]  # None shares nothing
    assert await reads.read("nodes", source.fetch, 0.0) == [4]  # another key is another read


@pytest.mark.asyncio
async def test_finished_reads_expire() -> None:
    reads, source = SharedReads(keep_seconds=0.1), Source(delay=0)
    observed = time.monotonic()
    await reads.read("pods", source.fetch, observed)
    await asyncio.sleep(0.2)
    assert await reads.read("pods", source.fetch, observed) == [2]


@pytest.mark.asyncio
async def test_failures_are_shared_by_joiners_but_not_kept() -> None:
    reads, source = SharedReads(keep_seconds=5), Source(fail=True)
    observed = time.monotonic()
    results = await asyncio.gather(
        *(reads.read("pods", source.fetch, observed) for _ in range(3)), return_exceptions=True
    )
    assert source.calls == 1 and all(isinstance(r, RuntimeError) for r in results)
    with pytest.raises(RuntimeError, match="read 2 failed"):
        await reads.read("pods", source.fetch, observed)


@pytest.mark.asyncio
async def test_a_cancelled_caller_does_not_cancel_the_read_for_the_others() -> None:
    reads, source = SharedReads(keep_seconds=5), Source(delay=0.1)
    observed = time.monotonic()
    first = asyncio.ensure_future(reads.read("pods", source.fetch, observed))
    await asyncio.sleep(0.01)
    second = asyncio.ensure_future(reads.read("pods", source.fetch, observed))
    await asyncio.sleep(0.01)
    first.cancel()
    assert await second == [1] and source.calls == 1


def test_listed_objects_keep_only_the_outline_of_writes_an_incident_dates_changes_from() -> None:
    from infragenius.gather.kube import _slim

    write = {
        "manager": "kubectl-edit",
        "operation": "Update",
        "time": "2025-01-15T11:58:00Z",
        "fieldsV1": {"f:data": {"f:app.conf": {}, "f:extra": {"deep": {"deeper": {}}}}, "f:metadata": {}},
    }
    configmap = {"metadata": {"name": "cfg", "managedFields": [write], "annotations": {LAST_APPLIED: "{...}"}}}
    pod = {"metadata": {"name": "web", "managedFields": [write]}}
    (kept,) = _slim([configmap], keep_writes=True)
    assert kept["metadata"]["managedFields"] == [
        {
            "manager": "kubectl-edit",
            "operation": "Update",
            "time": "2025-01-15T11:58:00Z",
            "fieldsV1": {"f:data": {"f:app.conf": {}, "f:extra": {}}, "f:metadata": {}},
        }
    ]
    assert "annotations" not in kept["metadata"] or LAST_APPLIED not in kept["metadata"]["annotations"]
    (dropped,) = _slim([pod])
    assert "managedFields" not in dropped["metadata"]


@pytest.mark.asyncio
async def test_kept_results_stay_within_the_total_budget_oldest_first(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("infragenius.gather.shared.KEEP_TOTAL_ITEMS", 25)

    class Sized:
        def __init__(self) -> None:
            self.calls = 0

        async def fetch(self) -> list[int]:
            self.calls += 1
            return list(range(10))

    reads, source = SharedReads(keep_seconds=60), Sized()
    observed = time.monotonic()
    for key in ("a", "b", "c"):  # 30 objects against a budget of 25: the oldest read goes
        await reads.read(key, source.fetch, observed)
    assert len(reads) == 2
    await reads.read("b", source.fetch, observed)
    await reads.read("c", source.fetch, observed)
    assert source.calls == 3  # still kept
    await reads.read("a", source.fetch, observed)
    assert source.calls == 4  # read again, and now "b" is the oldest to go
    assert len(reads) == 2
