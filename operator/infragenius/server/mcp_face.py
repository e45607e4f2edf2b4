"""The MCP face: tools, resources and prompts of the official SDK's MCPServer, each a thin call into the service.

A tool's input schema is generated from the same pydantic model the JSON API validates with, so the two
faces cannot drift apart. The caller's identity comes from the HTTP middleware (scope) or, over stdio, is
the local kubeconfig user.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, TypeVar

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.server.mcpserver.prompts.base import UserMessage
from mcp.shared.exceptions import MCPError
from mcp.types import CallToolResult, TextContent, ToolAnnotations
from pydantic import BaseModel, ValidationError

from infragenius.server import schemas
from infragenius.server.errors import ErrorCode, ServiceError
from infragenius.server.identity import Identity
from infragenius.server.service import Caller, InfraGeniusService

InputT = TypeVar("InputT", bound=BaseModel)

#: Where the HTTP middleware leaves the authenticated identity in the ASGI scope.
IDENTITY_SCOPE_KEY = "infragenius.identity"
#: JSON-RPC error code for a refused rate limit (implementation-defined range -32000..-32099).
RATE_LIMITED_CODE = -32029

INSTRUCTIONS = (
    "InfraGenius diagnoses Kubernetes namespaces. Findings live in Analyses, SLO verdicts in SLOReviews, "
    "incident timelines in IncidentReports. Every call needs a namespace you are allowed in. Start with "
    "list_runs, read details with get_analysis / get_incident_report / get_slo_status, ask 'has this happened "
    "before?' with search_finding_history, and start fresh runs with trigger_analysis / trigger_incident_report. "
    "Results come most severe first, in pages; pass next_cursor back as cursor for more."
)


def _identity(ctx: Context[Any, Any], fallback: Identity | None) -> Identity:
    request = ctx.request_context.request
    scope = getattr(request, "scope", None)
    identity = scope.get(IDENTITY_SCOPE_KEY) if isinstance(scope, dict) else None
    if isinstance(identity, Identity):
        return identity
    if fallback is not None:
        return fallback
    # The middleware refuses unauthenticated requests before the SDK sees them; this is a last guard.
    raise MCPError(code=-32001, message="unauthenticated")


def _to_mcp(err: ServiceError) -> Exception:
    """A rate limit is a JSON-RPC error (the client should back off); other refusals are tool errors a model reads."""
    if err.code is ErrorCode.rate_limited:
        return MCPError(code=RATE_LIMITED_CODE, message=err.message, data=err.as_dict())
    return ToolError(json.dumps({"error": err.as_dict()}))


def _tool_error(err: ServiceError) -> CallToolResult:
    """A refusal as a tool result with isError set: the model reads the JSON and can correct its call."""
    return CallToolResult(content=[TextContent(type="text", text=json.dumps({"error": err.as_dict()}))], is_error=True)


def _tool_function(
    name: str,
    input_model: type[BaseModel],
    output_model: type[BaseModel],
    operation: Callable[[Caller, Any], Awaitable[BaseModel]],
    face: str,
    fallback: Identity | None,
) -> Callable[..., Awaitable[BaseModel | CallToolResult]]:
    """A function whose signature is the input model's fields (the SDK builds the tool's schema from it)."""

    async def tool(ctx: Context[Any, Any], **arguments: Any) -> BaseModel | CallToolResult:
        caller = Caller(identity=_identity(ctx, fallback), face=face)
        try:
            query = input_model.model_validate(arguments)
        except ValidationError as err:
            fields = sorted({".".join(str(p) for p in e["loc"]) for e in err.errors()})
            return _tool_error(ServiceError(ErrorCode.invalid_argument, f"invalid arguments: {', '.join(fields)}"))
        try:
            return await operation(caller, query)
        except ServiceError as err:
            if err.code is ErrorCode.rate_limited:
                raise _to_mcp(err) from None
            return _tool_error(err)

    parameters = [inspect.Parameter("ctx", inspect.Parameter.KEYWORD_ONLY, annotation=Context)]
    annotations: dict[str, Any] = {"ctx": Context, "return": output_model}
    for field_name, field in input_model.model_fields.items():
        annotation = Annotated[field.annotation, field]  # type: ignore[name-defined]
        default = inspect.Parameter.empty if field.is_required() else field.get_default(call_default_factory=True)
        parameters.append(
            inspect.Parameter(field_name, inspect.Parameter.KEYWORD_ONLY, annotation=annotation, default=default)
        )
        annotations[field_name] = annotation
    tool.__signature__ = inspect.Signature(parameters, return_annotation=output_model)  # type: ignore[attr-defined]
    tool.__annotations__ = annotations
    tool.__name__ = tool.__qualname__ = name
    return tool


READ_ONLY = ToolAnnotations(read_only_hint=True, open_world_hint=False)
CREATES_RUN = ToolAnnotations(read_only_hint=False, destructive_hint=False, idempotent_hint=False)


def build_mcp_server(service: InfraGeniusService, *, face: str, fallback: Identity | None = None) -> MCPServer[Any]:
    """``fallback``: the identity for transports without HTTP (stdio)."""
    # WARNING: the SDK logs every stateless request at INFO.
    server: MCPServer[Any] = MCPServer("infragenius", instructions=INSTRUCTIONS, version="0.1.0", log_level="WARNING")

    def add(
        name: str,
        description: str,
        input_model: type[BaseModel],
        output_model: type[BaseModel],
        operation: Callable[[Caller, Any], Awaitable[BaseModel]],
        annotations: ToolAnnotations,
    ) -> None:
        server.add_tool(
            _tool_function(name, input_model, output_model, operation, face, fallback),
            name=name,
            description=description,
            annotations=annotations,
        )

    add(
        "list_runs",
        "List the Analyses, SLOReviews or IncidentReports of one namespace with their phase and headline "
        "(finding counts, SLO verdict, top incident cause), most severe first. Filter Analyses by the severity "
        "or detector of their findings. Use it first to find names for the get_* tools.",
        schemas.ListRunsInput,
        schemas.RunPage,
        service.list_runs,
        READ_ONLY,
    )
    add(
        "get_analysis",
        "Read one Analysis: its findings (most severe first; each with evidence and a remediation), the "
        "model's explanation when there is one, and the sources that could not be read. Filter findings by "
        "severity (that or worse), detector or resource kind.",
        schemas.GetAnalysisInput,
        schemas.AnalysisDetail,
        service.get_analysis,
        READ_ONLY,
    )
    add(
        "get_incident_report",
        "Read one IncidentReport: the window, suspected causes ranked with the reason for each, the latest "
        "timeline entries, impact and the draft postmortem (markdown).",
        schemas.GetResourceInput,
        schemas.IncidentDetail,
        service.get_incident_report,
        READ_ONLY,
    )
    add(
        "get_slo_status",
        "The state of one service's SLO (an SLOReview): verdict (Healthy, AtRisk, Breaching, Exhausted), SLI, "
        "error budget left in percent, burn rates per lookback, time until the budget runs out at the 1h "
        "burn rate, and the burn-rate alerts that hold.",
        schemas.GetResourceInput,
        schemas.SLOStatus,
        service.slo_status,
        READ_ONLY,
    )
    add(
        "search_finding_history",
        "Has this happened before? Search past findings in a namespace (stored in Postgres by every run) by "
        "workload name, detector, severity and time range (default: the last 30 days). One entry per distinct "
        "problem with first seen, last seen and the number of runs that reported it, most severe first.",
        schemas.SearchHistoryInput,
        schemas.HistoryPage,
        service.search_history,
        READ_ONLY,
    )
    add(
        "finding_trends",
        "Trends of a namespace's findings from history: open findings (critical, warning, info) per time bucket, "
        "mean and longest time from first seen to resolved by detector and severity, and the problems that "
        "came back most often. Optionally for one workload (Kind/name, e.g. Deployment/checkout) or detector.",
        schemas.TrendsInput,
        schemas.Trends,
        service.trends,
        READ_ONLY,
    )
    add(
        "trigger_analysis",
        "Run a fresh Analysis of a namespace now and wait up to wait_seconds for its findings. When it is "
        "not finished in time, finished is false: read it later with get_analysis and the returned name.",
        schemas.TriggerAnalysisInput,
        schemas.TriggerResult,
        service.trigger_analysis,
        CREATES_RUN,
    )
    add(
        "trigger_incident_report",
        "Reconstruct what happened in a namespace over the last `since` (e.g. 30m, 2h): creates an "
        "IncidentReport and waits up to wait_seconds for its timeline, ranked causes and postmortem draft.",
        schemas.TriggerIncidentInput,
        schemas.TriggerResult,
        service.trigger_incident_report,
        CREATES_RUN,
    )

    async def _resource(
        ctx: Context[Any, Any], operation: Callable[[Caller, Any], Awaitable[BaseModel]], query: BaseModel
    ) -> str:
        try:
            result = await operation(Caller(identity=_identity(ctx, fallback), face=face), query)
        except ServiceError as err:
            if err.code is ErrorCode.rate_limited:
                raise _to_mcp(err) from None
            raise MCPError(code=-32002 if err.code is ErrorCode.not_found else -32003, message=err.message) from None
        return result.model_dump_json(indent=1)

    def _resource_query(model: type[InputT], **values: str) -> InputT:
        try:
            return model.model_validate(values)
        except ValidationError:
            raise MCPError(code=-32602, message="namespace and name must be Kubernetes names") from None

    @server.resource(
        "infragenius://analyses/{namespace}/{name}",
        name="analysis",
        description="An Analysis's findings and explanation (JSON).",
        mime_type="application/json",
    )
    async def analysis_resource(namespace: str, name: str, ctx: Context[Any, Any]) -> str:
        return await _resource(
            ctx,
            service.get_analysis,
            _resource_query(schemas.GetAnalysisInput, namespace=namespace, name=name),
        )

    @server.resource(
        "infragenius://incidentreports/{namespace}/{name}",
        name="incident-report",
        description="An IncidentReport's causes, timeline and postmortem draft (JSON).",
        mime_type="application/json",
    )
    async def incident_resource(namespace: str, name: str, ctx: Context[Any, Any]) -> str:
        return await _resource(
            ctx, service.get_incident_report, _resource_query(schemas.GetResourceInput, namespace=namespace, name=name)
        )

    @server.resource(
        "infragenius://sloreviews/{namespace}/{name}",
        name="slo-review",
        description="An SLOReview's verdict, error budget and burn rates (JSON).",
        mime_type="application/json",
    )
    async def slo_resource(namespace: str, name: str, ctx: Context[Any, Any]) -> str:
        return await _resource(
            ctx, service.slo_status, _resource_query(schemas.GetResourceInput, namespace=namespace, name=name)
        )

    @server.prompt(
        name="triage_namespace",
        description="Triage a namespace: what is broken, since when, and what to do first.",
    )
    def triage_namespace(namespace: str) -> list[UserMessage]:
        return [
            UserMessage(
                f"Triage the Kubernetes namespace {namespace!r} with the InfraGenius tools. "
                f"1. list_runs (kind Analysis) in {namespace!r}; when none is recent, trigger_analysis. "
                "2. get_analysis on the newest one; take the critical findings first. "
                "3. For each critical finding, search_finding_history with its workload to say whether it "
                "happened before (first seen, occurrences). "
                "4. list_runs (kind SLOReview) and get_slo_status for any service not Healthy. "
                "Answer with: what is broken (evidence cited), since when, user impact, and the first three "
                "actions, each tied to a finding id. Do not invent resources that no tool returned."
            )
        ]

    @server.prompt(
        name="draft_postmortem",
        description="Draft a blameless postmortem from an IncidentReport.",
    )
    async def draft_postmortem(namespace: str, name: str, ctx: Context[Any, Any]) -> list[UserMessage]:
        query = _resource_query(schemas.GetResourceInput, namespace=namespace, name=name)
        try:
            report = await service.get_incident_report(Caller(identity=_identity(ctx, fallback), face=face), query)
        except ServiceError as err:
            raise _to_mcp(err) if err.code is ErrorCode.rate_limited else ValueError(err.message) from None
        return [
            UserMessage(
                "Write a blameless postmortem in markdown with the sections Summary, Impact, Timeline, Root "
                "cause, What went well, What went wrong, Action items (owner, due date left blank). Use only "
                "the facts in this IncidentReport; say 'unknown' where it has none.\n\n"
                + report.model_dump_json(indent=1)
            )
        ]

    @server.prompt(
        name="slo_check",
        description="Explain a service's SLO state and whether to hold a rollout.",
    )
    def slo_check(namespace: str, name: str) -> list[UserMessage]:
        return [
            UserMessage(
                f"Call get_slo_status for SLOReview {name!r} in {namespace!r}. Explain the verdict, the error "
                "budget left and the time to exhaustion in two sentences, then say whether a rollout should "
                "wait (Breaching or Exhausted: wait; AtRisk: proceed with care) and why."
            )
        ]

    return server
