"""What a Prometheus (or something posing as one) answers reaches status only in a bounded, known form."""

from __future__ import annotations

import json

from infragenius.gather.prometheus import describe


def _http_error(code: int, body: bytes) -> Exception:
    # prometheus-api-client's own form for a non-200 reply.
    return Exception(f"HTTP Status Code {code} ({body!r})")


def test_a_prometheus_api_error_is_quoted_bounded() -> None:
    body = json.dumps({"status": "error", "errorType": "bad_data", "error": "1:19: parse error: unexpected\n"})
    assert describe(_http_error(400, body.encode())) == "HTTP 400 bad_data: 1:19: parse error: unexpected "
    long = json.dumps({"status": "error", "errorType": "execution", "error": "x" * 5000})
    assert len(describe(_http_error(422, long.encode()))) < 340


def test_any_other_reply_is_a_status_code_alone() -> None:
    secret = b'{"aws_secret_access_key": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"}'
    for code, body in (
        (403, secret),
        (500, b"<html>internal admin console: token=abc123</html>"),
        (400, json.dumps({"status": "error", "errorType": "made_up", "error": "token=abc123"}).encode()),
        (401, json.dumps({"status": "success", "error": "token=abc123"}).encode()),
        (404, b"not json at all token=abc123"),
    ):
        text = describe(_http_error(code, body))
        assert text == f"HTTP {code}: not a Prometheus API error reply (body not shown)", text


def test_transport_errors_keep_their_type() -> None:
    assert describe(ConnectionError("Connection refused")).startswith("ConnectionError: Connection refused")
