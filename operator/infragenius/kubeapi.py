"""Raw Kubernetes API requests through the official client's auth, TLS and connection pool.

Used where the typed APIs would cost too much (large LISTs decoded into models)
or cannot express the request (metadata-only lists, merge-patching status).
"""

from __future__ import annotations

import json
from typing import Any, Mapping, Sequence

from kubernetes import client


def request(
    api: client.ApiClient,
    method: str,
    path: str,
    *,
    query: Sequence[tuple[str, Any]] = (),
    headers: Mapping[str, str] | None = None,
    body: Any = None,
    timeout: tuple[float, float] = (5.0, 60.0),
) -> Any:
    """Send one request and return the decoded JSON; raise ``client.ApiException`` for non-2xx."""
    serialized = api.param_serialize(
        method=method,
        resource_path=path,
        query_params=list(query),
        header_params={"Accept": "application/json", **(headers or {})},
        body=body,
        auth_settings=["BearerToken"],
    )
    method_, url, header_params, body_, post_params = serialized
    response = api.call_api(method_, url, header_params=header_params, body=body_, post_params=post_params, _request_timeout=timeout)
    data = response.read()
    if not 200 <= response.status <= 299:
        raise client.ApiException(status=response.status, reason=response.reason, body=data.decode(errors="replace"))
    return json.loads(data) if data else None
