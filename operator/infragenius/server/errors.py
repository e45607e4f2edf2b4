"""Errors as data: every failure a caller can cause or see is a ServiceError with a code and a plain message."""

from __future__ import annotations

from enum import StrEnum


class ErrorCode(StrEnum):
    unauthenticated = "unauthenticated"
    forbidden = "forbidden"
    not_found = "not_found"
    invalid_argument = "invalid_argument"
    rate_limited = "rate_limited"
    timeout = "timeout"
    unavailable = "unavailable"
    too_large = "too_large"


#: The HTTP status of each code, for the JSON API (the MCP face maps codes to JSON-RPC errors).
HTTP_STATUS: dict[ErrorCode, int] = {
    ErrorCode.unauthenticated: 401,
    ErrorCode.forbidden: 403,
    ErrorCode.not_found: 404,
    ErrorCode.invalid_argument: 400,
    ErrorCode.rate_limited: 429,
    ErrorCode.timeout: 504,
    ErrorCode.unavailable: 503,
    ErrorCode.too_large: 413,
}


class ServiceError(Exception):
    """A refusal or failure the caller is told about; ``message`` never carries a stack trace or a secret."""

    def __init__(self, code: ErrorCode, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.retry_after = retry_after

    def as_dict(self) -> dict[str, object]:
        body: dict[str, object] = {"code": self.code.value, "message": self.message}
        if self.retry_after is not None:
            body["retryAfterSeconds"] = self.retry_after
        return body
