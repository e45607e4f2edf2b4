"""The two faces over one service: tool schemas, the OpenAPI document, the gate, cursors and bad input.

The service here reads from a WatchCache that was never started (a real cache, still loading), so calls
that reach it answer "unavailable" the way a server does in its first seconds.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from kubernetes import client
from mcp import Client
from starlette.testclient import TestClient

from infragenius.server import http_face, schemas
from infragenius.server.app import Gatekeeper
from infragenius.server.errors import ErrorCode, ServiceError
from infragenius.server.identity import AuthMethod, Identity, Scope
from infragenius.server.mcp_face import build_mcp_server
from infragenius.server.readers import WatchCache
from infragenius.server.service import Authorizer, Caller, InfraGeniusService, decode_cursor, encode_cursor

READER = Identity(
    principal="key:alice/abc", method=AuthMethod.api_key, tier="free", scopes=frozenset({Scope.read}),
    namespaces=frozenset({"team-a"}),
)  # fmt: skip


@pytest.fixture
def service() -> InfraGeniusService:
    api = client.ApiClient(client.Configuration())
    return InfraGeniusService(
        reader=WatchCache(api),
        api=api,
        history=None,
        authorizer=Authorizer(None),
        limiter=None,
        audit=None,
        trigger_max_wait_seconds=5,
    )


def test_cursors_round_trip_and_foreign_ones_are_refused() -> None:
    assert decode_cursor(encode_cursor(40)) == 40
    assert decode_cursor(None) == 0
    for bad in ("nonsense!", "eyJ4IjogMX0", encode_cursor(-1), "e30"):
        with pytest.raises(ServiceError) as refused:
            decode_cursor(bad)
        assert refused.value.code is ErrorCode.invalid_argument


async def test_authorizer_names_the_missing_scope_or_namespace() -> None:
    authorizer = Authorizer(None)
    await authorizer.require(READER, "list", "analyses", "team-a")
    with pytest.raises(ServiceError, match="lacks the scope 'run'"):
        await authorizer.require(READER, "create", "incidentreports", "team-a")
    with pytest.raises(ServiceError, match="not allowed in namespace 'team-b'"):
        await authorizer.require(READER, "get", "analyses", "team-b")


async def test_mcp_lists_every_tool_with_a_schema_a_model_can_follow(service: InfraGeniusService) -> None:
    server = build_mcp_server(service, face="mcp", fallback=READER)
    async with Client(server) as mcp:
        tools = {t.name: t for t in (await mcp.list_tools()).tools}
        prompts = {p.name for p in (await mcp.list_prompts()).prompts}
        templates = {t.uri_template for t in (await mcp.list_resource_templates()).resource_templates}
        assert set(tools) == {
            "list_runs", "get_analysis", "get_incident_report", "get_slo_status",
            "search_finding_history", "finding_trends", "trigger_analysis", "trigger_incident_report",
        }  # fmt: skip
        namespace = tools["get_analysis"].input_schema["properties"]["namespace"]
        assert namespace["pattern"] and namespace["maxLength"] == 63
        assert tools["get_analysis"].input_schema["required"] == ["namespace", "name"]
        assert all(len(t.description or "") > 60 for t in tools.values())
        assert {"triage_namespace", "draft_postmortem"} <= prompts
        assert "infragenius://analyses/{namespace}/{name}" in templates

        wrong_type = await mcp.call_tool("list_runs", {"namespace": "team-a", "kind": "Analysis", "limit": "many"})
        assert wrong_type.is_error
        unicode_trick = await mcp.call_tool("list_runs", {"namespace": "team\u2011a", "kind": "Analysis"})
        assert unicode_trick.is_error
        other_namespace = await mcp.call_tool("list_runs", {"namespace": "team-b", "kind": "Analysis"})
        assert other_namespace.is_error
        assert json.loads(other_namespace.content[0].text)["error"]["code"] == "forbidden"  # type: ignore[union-attr]
        loading = await mcp.call_tool("list_runs", {"namespace": "team-a", "kind": "Analysis"})
        assert json.loads(loading.content[0].text)["error"]["code"] == "unavailable"  # type: ignore[union-attr]


def test_openapi_document_covers_every_route_and_its_refs_resolve(service: InfraGeniusService) -> None:
    routes = http_face.api_routes(service)
    document = http_face.openapi_document(routes)
    assert {(r.path, r.method.lower()) for r in routes} == {
        (path, method) for path, ops in document["paths"].items() for method in ops
    }
    text = json.dumps(document)
    for ref in {part.split('"')[0] for part in text.split('"$ref": "#/components/schemas/')[1:]}:
        assert ref in document["components"]["schemas"], ref


def _gated_app(service: InfraGeniusService, refusals: list[str]) -> TestClient:
    from starlette.applications import Starlette

    async def authenticate(token: str) -> Identity:
        if token == "good":
            return READER
        raise ServiceError(ErrorCode.unauthenticated, "the bearer token is not valid")

    inner = Starlette(routes=http_face.starlette_routes(service))
    gate = Gatekeeper(
        inner,
        authenticate=authenticate,
        max_body_bytes=2048,
        on_refusal=lambda face, outcome, _t: refusals.append(outcome),
    )
    return TestClient(gate, raise_server_exceptions=False)


def test_the_gate_refuses_anonymous_and_oversized_calls_in_the_protocols_form(service: InfraGeniusService) -> None:
    refusals: list[str] = []
    http = _gated_app(service, refusals)
    anonymous = http.get("/v1/namespaces/team-a/runs?kind=Analysis")
    assert anonymous.status_code == 401 and anonymous.headers["www-authenticate"].startswith("Bearer")
    assert anonymous.json()["error"]["code"] == "unauthenticated"
    bad_token = http.post("/mcp", headers={"Authorization": "Bearer nope"}, content=b"{}")
    assert bad_token.status_code == 401 and bad_token.json()["error"]["code"] == -32001
    assert refusals == ["unauthenticated", "unauthenticated"]
    huge = http.post("/v1/namespaces/team-a/analyses", headers={"Authorization": "Bearer good"}, content=b"x" * 4096)
    assert huge.status_code == 413
    assert http.get("/v1/openapi.json").status_code == 200


@pytest.mark.parametrize(
    ("path", "body", "status"),
    [
        ("/v1/namespaces/Team_A/runs?kind=Analysis", None, 400),
        ("/v1/namespaces/team-a/runs?kind=Nope", None, 400),
        ("/v1/namespaces/team-a/runs?kind=Analysis&limit=1000", None, 400),
        ("/v1/namespaces/team-a/runs?kind=Analysis&cursor=%00%01", None, 400),
        ("/v1/namespaces/team-a/analyses", b"{not json", 400),
        ("/v1/namespaces/team-a/analyses", b"[1, 2]", 400),
        ("/v1/namespaces/team-a/analyses", b'{"wait_seconds": "soon"}', 400),
        ("/v1/namespaces/team-a/analyses", b'{"unexpected": 1}', 400),
    ],
)
def test_bad_input_gets_a_clear_error_without_a_trace(
    service: InfraGeniusService, path: str, body: bytes | None, status: int
) -> None:
    http = _gated_app(service, [])
    headers = {"Authorization": "Bearer good"}
    reply = http.post(path, headers=headers, content=body) if body is not None else http.get(path, headers=headers)
    assert reply.status_code == status, reply.text
    payload: dict[str, Any] = reply.json()
    assert payload["error"]["message"] and "Traceback" not in reply.text


async def test_service_operations_reach_the_reader_only_after_authorization(service: InfraGeniusService) -> None:
    caller = Caller(identity=READER, face="http")
    with pytest.raises(ServiceError) as refused:
        await service.trigger_analysis(caller, schemas.TriggerAnalysisInput(namespace="team-a"))
    assert refused.value.code is ErrorCode.forbidden


@pytest.mark.parametrize(
    ("window", "problem"),
    [
        ({"since": "0s"}, "since must be longer than 0s"),
        ({"start": "2026-12-02T09:00:00Z"}, "start and end go together"),
        ({"start": "2026-12-02T10:00:00Z", "end": "2026-12-02T09:00:00Z"}, "start must be before end"),
        ({"since": "30m", "start": "2026-12-02T09:00:00Z", "end": "2026-12-02T10:00:00Z"}, "not both"),
    ],
)
async def test_an_incident_window_the_crd_would_refuse_is_refused_before_anything_is_created(
    service: InfraGeniusService, window: dict[str, str], problem: str
) -> None:
    runner = Identity(
        principal="key:alice/run", method=AuthMethod.api_key, tier="free", scopes=frozenset({Scope.run}),
        namespaces=frozenset({"team-a"}),
    )  # fmt: skip
    with pytest.raises(ServiceError) as refused:
        await service.trigger_incident_report(
            Caller(identity=runner, face="http"), schemas.TriggerIncidentInput(namespace="team-a", **window)
        )
    assert refused.value.code is ErrorCode.invalid_argument and problem in refused.value.message


def test_an_address_that_keeps_failing_authentication_is_slowed_before_any_lookup(
    service: InfraGeniusService,
) -> None:
    attempts: list[str] = []

    async def authenticate(token: str) -> Identity:
        attempts.append(token)
        raise ServiceError(ErrorCode.unauthenticated, "the bearer token is not valid")

    from starlette.applications import Starlette

    gate = Gatekeeper(
        Starlette(routes=http_face.starlette_routes(service)),
        authenticate=authenticate,
        max_body_bytes=2048,
        on_refusal=lambda *_: None,
        failures_per_minute=5,
    )
    http = TestClient(gate, raise_server_exceptions=False)
    statuses = [
        http.get("/v1/namespaces/team-a/runs", headers={"Authorization": f"Bearer guess-{n}"}).status_code
        for n in range(8)
    ]
    assert statuses[:6] == [401] * 6 and statuses[6:] == [429, 429]
    # The sixth failure emptied the bucket; the guesses after it never reached the authenticator.
    assert len(attempts) == 6
    refused = http.get("/v1/namespaces/team-a/runs", headers={"Authorization": "Bearer guess-9"})
    assert refused.status_code == 429 and int(refused.headers["retry-after"]) >= 1
