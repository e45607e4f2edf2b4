"""The analysis pipeline with container logs (served by kmock): read only when asked, shown by the CLI,
and reported as a missing source, not a failed run, when the API cannot serve them."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import kmock
import pytest
from kubernetes import client

from infragenius.analysis.cli_output import outcome_document, render_table
from infragenius.analysis.runner import analyze
from infragenius.cli import main
from infragenius.gather.kube import KubeGatherer
from infragenius.gather.logs import LogOptions
from infragenius.models.analysis import AnalysisSpec
from tests.e2e.kmock_support import ServedKmock, status_body

NS = "shop"
LOG = f"/api/v1/namespaces/{NS}/pods/web-1/log"
CRASHING_POD = {
    "metadata": {"name": "web-1", "namespace": NS, "uid": "u1"},
    "spec": {"containers": [{"name": "app", "image": "web:1"}]},
    "status": {
        "phase": "Running",
        "containerStatuses": [
            {
                "name": "app",
                "ready": False,
                "restartCount": 9,
                "state": {"waiting": {"reason": "CrashLoopBackOff"}},
                "lastState": {"terminated": {"reason": "Error", "exitCode": 1}},
            }
        ],
    },
}


@pytest.fixture
async def served() -> AsyncIterator[tuple[kmock.RawHandler, client.ApiClient]]:
    async with kmock.RawHandler() as handler, kmock.Server(handler) as server:
        with client.ApiClient(client.Configuration(host=str(server.url).rstrip("/"))) as api:
            handler[f"get /api/v1/namespaces/{NS}"] << {"kind": "Namespace", "metadata": {"name": NS}}
            handler[f"get /api/v1/namespaces/{NS}/pods"] << {"metadata": {}, "items": [CRASHING_POD]}
            yield handler, api


def answer_the_rest(handler: kmock.RawHandler) -> None:
    handler["get"] << {"metadata": {}, "items": []}  # every other kind: empty


def log_requests(handler: kmock.RawHandler) -> list[Any]:
    return [r for r in handler if r.url.path == LOG]


def crash(outcome: Any) -> Any:
    return next(f for f in outcome.findings if "CrashLoopBackOff" in f.title)


async def test_the_crashed_run_log_is_in_the_finding_and_the_cli_output(served) -> None:
    handler, api = served
    handler[f"get {LOG}"] << b"INFO boot\npanic: open /etc/app/config.yaml: no such file or directory\n"
    answer_the_rest(handler)

    outcome = await analyze(KubeGatherer(api), AnalysisSpec(), NS, logs=LogOptions())

    (request,) = log_requests(handler)
    assert request.params.get("previous") == "true" and request.params.get("container") == "app"
    assert outcome.missing == []
    report = outcome.snapshot.result("pod-logs")
    assert report is not None and report.status.value == "ok" and report.count == 1
    evidence = {e.source: e.value for e in crash(outcome).evidence}
    assert evidence["log:app (previous run)"] == "panic: open /etc/app/config.yaml: no such file or directory"
    table = render_table(outcome)
    assert "    log:app (previous run) = panic: open /etc/app/config.yaml: no such file or directory" in table
    document = json.loads(json.dumps(outcome_document(outcome)))
    (finding,) = [f for f in document["findings"] if "CrashLoopBackOff" in f["title"]]
    assert {"source": "log:app (previous run)", "value": evidence["log:app (previous run)"]} in finding["evidence"]


async def test_multi_line_excerpts_are_indented_under_their_source_in_the_table(served) -> None:
    handler, api = served
    handler[f"get {LOG}"] << b"ERROR first\nINFO noise\nFATAL second\n"
    answer_the_rest(handler)

    outcome = await analyze(KubeGatherer(api), AnalysisSpec(), NS, logs=LogOptions())

    lines = render_table(outcome).splitlines()
    at = lines.index("    log:app (previous run) = ERROR first")
    assert lines[at + 1] == "        | FATAL second"


async def test_no_log_is_requested_without_log_options(served) -> None:
    handler, api = served
    answer_the_rest(handler)

    outcome = await analyze(KubeGatherer(api), AnalysisSpec(), NS)

    assert log_requests(handler) == []
    assert outcome.snapshot.result("pod-logs") is None and not outcome.snapshot.logs
    assert not [e for e in crash(outcome).evidence if e.source.startswith("log:")]


async def test_an_unreachable_kubelet_is_a_missing_source_and_the_run_completes(served) -> None:
    handler, api = served
    dial = 'Get "https://10.0.0.9:10250/containerLogs/shop/web-1/app": dial tcp 10.0.0.9:10250: connect: refused'
    handler[f"get {LOG}"] << 500 << status_body(500, "InternalError", dial)
    answer_the_rest(handler)

    outcome = await analyze(KubeGatherer(api), AnalysisSpec(), NS, logs=LogOptions())

    (report,) = outcome.source_reports()
    assert (report.source, report.status, report.count) == ("pod-logs", "no_data", 0)
    assert report.error == f"1 of 1 container logs unavailable, e.g. {NS}/web-1/app: 500 Internal Server Error: {dial}"
    evidence = {e.source: e.value for e in crash(outcome).evidence}
    assert evidence["log:app (previous run)"] == f"unavailable: 500 Internal Server Error: {dial}"
    assert "could not read pod-logs" in render_table(outcome)


@pytest.fixture
def threaded() -> Iterator[ServedKmock[kmock.RawHandler]]:
    """For the CLI, which runs its own event loop: the server on another thread."""
    with ServedKmock(kmock.RawHandler) as served:
        handler = served.handler
        handler[f"get /api/v1/namespaces/{NS}"] << {"kind": "Namespace", "metadata": {"name": NS}}
        handler[f"get /api/v1/namespaces/{NS}/pods"] << {"metadata": {}, "items": [CRASHING_POD]}
        handler[f"get {LOG}"] << b"Traceback (most recent call last):\n  File \"/app/x.py\", line 1\nKeyError: 'DB'\n"
        answer_the_rest(handler)
        yield served


@pytest.mark.parametrize("flag", [[], ["--no-container-logs"]])
def test_the_cli_prints_log_lines_unless_told_not_to_read_logs(
    threaded: ServedKmock[kmock.RawHandler], tmp_path: Path, capsys: pytest.CaptureFixture[str], flag: list[str]
) -> None:
    code = main(["analyze", "-n", NS, "--kubeconfig", threaded.kubeconfig(tmp_path), *flag])

    out = capsys.readouterr().out
    assert code == 1, out  # critical findings
    if flag:
        assert log_requests(threaded.handler) == [] and "log:app" not in out
    else:
        (request,) = log_requests(threaded.handler)
        assert request.params.get("tailLines") == "200" and request.params.get("limitBytes") == "65536"
        assert "    log:app (previous run) = Traceback (most recent call last):\n" in out
        assert "        | KeyError: 'DB'\n" in out
