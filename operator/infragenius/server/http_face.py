"""The JSON API under /v1: one route per service operation, and an OpenAPI document generated from the same
route table and pydantic models (so the document cannot describe an API the server does not have)."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ValidationError
from pydantic.json_schema import models_json_schema
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from infragenius.server import schemas
from infragenius.server.errors import HTTP_STATUS, ErrorCode, ServiceError
from infragenius.server.identity import Identity
from infragenius.server.service import Caller, InfraGeniusService

IDENTITY_SCOPE_KEY = "infragenius.identity"


@dataclass(frozen=True)
class ApiRoute:
    method: str
    path: str
    summary: str
    input_model: type[BaseModel]
    output_model: type[BaseModel]
    operation: Callable[[Caller, Any], Awaitable[BaseModel]]
    #: Fixed input values the path implies (e.g. kind=Analysis).
    fixed: tuple[tuple[str, str], ...] = ()


def api_routes(service: InfraGeniusService) -> list[ApiRoute]:
    ns = "/v1/namespaces/{namespace}"
    return [
        ApiRoute("GET", f"{ns}/runs", "List Analyses, SLOReviews or IncidentReports (query: kind)",
                 schemas.ListRunsInput, schemas.RunPage, service.list_runs),
        ApiRoute("GET", f"{ns}/analyses/{{name}}", "Read an Analysis's findings",
                 schemas.GetAnalysisInput, schemas.AnalysisDetail, service.get_analysis),
        ApiRoute("GET", f"{ns}/incidentreports/{{name}}", "Read an IncidentReport",
                 schemas.GetResourceInput, schemas.IncidentDetail, service.get_incident_report),
        ApiRoute("GET", f"{ns}/sloreviews/{{name}}", "SLO status of a service",
                 schemas.GetResourceInput, schemas.SLOStatus, service.slo_status),
        ApiRoute("GET", f"{ns}/history", "Search finding history",
                 schemas.SearchHistoryInput, schemas.HistoryPage, service.search_history),
        ApiRoute("GET", f"{ns}/trends", "Open findings over time, time to resolve, recurring problems",
                 schemas.TrendsInput, schemas.Trends, service.trends),
        ApiRoute("POST", f"{ns}/analyses", "Run an Analysis now and wait for it",
                 schemas.TriggerAnalysisInput, schemas.TriggerResult, service.trigger_analysis),
        ApiRoute("POST", f"{ns}/incidentreports", "Create an IncidentReport and wait for it",
                 schemas.TriggerIncidentInput, schemas.TriggerResult, service.trigger_incident_report),
    ]  # fmt: skip


def error_response(err: ServiceError) -> JSONResponse:
    headers = {"Retry-After": str(int(err.retry_after or 1))} if err.code is ErrorCode.rate_limited else None
    return JSONResponse({"error": err.as_dict()}, status_code=HTTP_STATUS[err.code], headers=headers)


def _validation_message(err: ValidationError) -> str:
    """Field names and pydantic's message, never the rejected value (it may be anything the caller sent)."""
    parts = [f"{'.'.join(str(p) for p in e['loc']) or 'body'}: {e['msg']}" for e in err.errors()[:10]]
    return "invalid input: " + "; ".join(parts)


def _endpoint(route: ApiRoute) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        identity = request.scope.get(IDENTITY_SCOPE_KEY)
        if not isinstance(identity, Identity):
            return error_response(ServiceError(ErrorCode.unauthenticated, "authentication required"))
        values: dict[str, Any] = dict(request.query_params)
        if route.method == "POST":
            raw = await request.body()
            if raw.strip():
                try:
                    body = json.loads(raw)
                except (ValueError, UnicodeDecodeError):
                    return error_response(ServiceError(ErrorCode.invalid_argument, "the body is not JSON"))
                if not isinstance(body, dict):
                    return error_response(ServiceError(ErrorCode.invalid_argument, "the body must be a JSON object"))
                values.update(body)
        values.update(request.path_params)
        values.update(dict(route.fixed))
        try:
            query = route.input_model.model_validate(values)
        except ValidationError as err:
            return error_response(ServiceError(ErrorCode.invalid_argument, _validation_message(err)))
        try:
            result = await route.operation(Caller(identity=identity, face="http"), query)
        except ServiceError as err:
            return error_response(err)
        return JSONResponse(schemas.dump(result))

    return endpoint


def starlette_routes(service: InfraGeniusService) -> list[Route]:
    routes = api_routes(service)
    document = openapi_document(routes)

    async def openapi(_request: Request) -> Response:
        return JSONResponse(document)

    return [Route("/v1/openapi.json", openapi, methods=["GET"])] + [
        Route(r.path, _endpoint(r), methods=[r.method]) for r in routes
    ]


def openapi_document(routes: list[ApiRoute]) -> dict[str, Any]:
    models: list[tuple[type[BaseModel], Any]] = []
    for route in routes:
        models += [(route.input_model, "validation"), (route.output_model, "serialization")]
    models.append((schemas.ErrorEnvelope, "serialization"))
    refs, defs = models_json_schema(models, ref_template="#/components/schemas/{model}")
    error_ref = refs[(schemas.ErrorEnvelope, "serialization")]
    paths: dict[str, Any] = {}
    for route in routes:
        input_schema = route.input_model.model_json_schema()
        path_names = {part[1:-1] for part in route.path.split("/") if part.startswith("{")}
        parameters = [
            {
                "name": name,
                "in": "path" if name in path_names else "query",
                "required": name in path_names or name in input_schema.get("required", []),
                "schema": prop,
            }
            for name, prop in input_schema["properties"].items()
            if route.method == "GET" or name in path_names
        ]
        operation: dict[str, Any] = {
            "summary": route.summary,
            "operationId": route.operation.__name__,
            "parameters": parameters,
            "security": [{"bearer": []}],
            "responses": {
                "200": {
                    "description": "OK",
                    "content": {"application/json": {"schema": refs[(route.output_model, "serialization")]}},
                },
                **{
                    str(status): {"description": code.value, "content": {"application/json": {"schema": error_ref}}}
                    for code, status in HTTP_STATUS.items()
                },
            },
        }
        if route.method == "POST":
            operation["requestBody"] = {
                "required": False,
                "content": {"application/json": {"schema": refs[(route.input_model, "validation")]}},
            }
        paths.setdefault(route.path, {})[route.method.lower()] = operation
    return {
        "openapi": "3.1.0",
        "info": {"title": "InfraGenius API", "version": "v1"},
        "paths": paths,
        "components": {
            "schemas": defs.get("$defs", {}),
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "An InfraGenius API key (igk_...) or a Kubernetes service account token.",
                }
            },
        },
    }
