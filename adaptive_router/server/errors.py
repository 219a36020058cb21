"""HTTP errors in OpenAI's shape, and the mapping from library errors to them, split by whose fault it is.

Every error response is ``{"error": {"message", "type", "param", "code"}}`` with a status that says who is
to fix it::

    APIError (AdaptiveRouterError)
    ├── 400 invalid_request_error   a bad body, an unknown parameter value, max_tokens above the limit
    ├── 401 authentication_error    a missing or wrong bearer key
    ├── 404 not_found_error         an unknown model (router) name or path
    ├── 413 invalid_request_error   a body above server.max_request_bytes
    ├── 429 insufficient_quota      the key's budget cannot pay for the request
    ├── 503 server_busy / upstream_unavailable (with Retry-After)
    ├── 502 upstream_error          the upstream failed (after retries and fallback)
    └── 504 timeout                 the upstream or the request ran out of time

`from_exception` maps what a router raised: `ConfigError` -> 400, `RetryExhaustedError` -> 504 when its
deadline passed else 502, other `BackendError`s -> 502, anything unexpected -> 500 with no detail (the log
has it, under the request id). Messages go through `Redactor`, so an upstream key never reaches a client
(a client's own key is never forwarded upstream, so no upstream message can carry it).

Examples
--------
>>> err = APIError(404, "unknown model 'x'", code="model_not_found")
>>> err.body()["error"]["type"], err.status
('not_found_error', 404)
>>> Redactor(["sk-secret-123"]).scrub("401 from upstream: bad key sk-secret-123")
'401 from upstream: bad key ***'
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping
from typing import Any

from adaptive_router.errors import (
    AdaptiveRouterError,
    BackendError,
    BackendUnavailableError,
    ConfigError,
    ProbeError,
    RetryExhaustedError,
)

__all__ = ["APIError", "Redactor", "from_exception"]

_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    405: "invalid_request_error",
    413: "invalid_request_error",
    422: "invalid_request_error",
    429: "insufficient_quota",
    500: "server_error",
    502: "upstream_error",
    503: "server_error",
    504: "timeout",
}


class APIError(AdaptiveRouterError):
    """An error answered to the client: status, OpenAI error type and code, an optional offending parameter.

    Parameters
    ----------
    status : int
        HTTP status.
    message : str
        What went wrong and what to do.
    code : str, optional
        Machine-readable code (``invalid_api_key``, ``model_not_found``, ``insufficient_quota``, ...).
    param : str, optional
        The request field at fault.
    headers : mapping, optional
        Extra response headers (``Retry-After``).
    """

    def __init__(
        self,
        status: int,
        message: str,
        *,
        code: str | None = None,
        param: str | None = None,
        headers: Mapping[str, str] | None = None,
        type: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.param = param
        self.headers = dict(headers or {})
        self.type = type or _TYPES.get(status, "server_error" if status >= 500 else "invalid_request_error")

    def body(self) -> dict[str, Any]:
        """The JSON body: ``{"error": {...}}``."""
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}

    def __repr__(self) -> str:
        return f"APIError({self.status}, {self.message!r}, code={self.code!r})"


class Redactor:
    """Replaces every known secret (the upstream API keys) in a text by ``***``.

    Parameters
    ----------
    secrets : iterable of str
        The values never to show; strings shorter than 4 characters are ignored.
    """

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._secrets = sorted({s for s in secrets if s and len(s) >= 4}, key=len, reverse=True)

    def scrub(self, text: str) -> str:
        """`text` with every secret replaced."""
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, "***")
        return text

    def __repr__(self) -> str:
        return f"Redactor({len(self._secrets)} secrets)"


def from_exception(exc: BaseException, redactor: Redactor, *, request_id: str) -> APIError:
    """The client's view of what a router call raised (messages scrubbed of secrets)."""
    if isinstance(exc, APIError):
        return exc
    detail = redactor.scrub(str(exc))[:600]
    if isinstance(exc, ConfigError):
        return APIError(400, detail, code="invalid_request")
    if isinstance(exc, RetryExhaustedError):
        if "deadline" in detail:
            return APIError(504, f"the upstream did not answer in time: {detail}", code="upstream_timeout")
        return APIError(502, f"the upstream kept failing: {detail}", code="upstream_error")
    if isinstance(exc, BackendUnavailableError):
        return APIError(502, f"the upstream is unavailable: {detail}", code="upstream_unavailable")
    if isinstance(exc, BackendError):
        return APIError(502, f"the upstream failed: {detail}", code="upstream_error")
    if isinstance(exc, (asyncio.TimeoutError, TimeoutError)):
        return APIError(504, "the request ran out of time", code="timeout")
    if isinstance(exc, ProbeError):
        return APIError(500, f"the probe failed: {detail} (request {request_id})", code="probe_error")
    return APIError(
        500, f"internal error; the server log has the details under request id {request_id}", code="internal"
    )
