"""One error vocabulary: what actions raise when they refuse, and the one JSON shape for it.

Actions raise these; each transport maps them once: every API route (fast path, DRF, plain
views) answers `{"error": code, "detail": ...}` with the status below (`json_error`,
`error_body`), HTML views turn them into form errors and messages (`message_dict`).
Checks of shape live in forms and serializers, business rules in actions.
"""

from __future__ import annotations

from typing import Any, ClassVar

from django.http import JsonResponse


class ActionError(Exception):
    """A refused request. `detail` is a message or {field: [messages]}; `extra` goes into the
    JSON body beside it (e.g. the task's current state with a conflict)."""

    status: ClassVar[int] = 400
    code: ClassVar[str] = "error"

    def __init__(self, detail: Any = None, **extra: Any) -> None:
        super().__init__(detail if isinstance(detail, str) else repr(detail))
        self.detail = detail
        self.extra = extra

    @property
    def message_dict(self) -> dict[str, list[str]]:
        """The detail as form errors ({field: [messages]}; "__all__" for a plain message)."""
        if isinstance(self.detail, dict):
            return {
                k: [str(m) for m in (v if isinstance(v, list) else [v])]
                for k, v in self.detail.items()
            }
        return {"__all__": [str(self.detail)]}

    @property
    def messages(self) -> list[str]:
        return [m for ms in self.message_dict.values() for m in ms]

    def body(self) -> dict[str, Any]:
        return error_body(self.code, self.detail, **self.extra)


class Invalid(ActionError):
    """The input breaks a rule (400): a message per field."""

    status, code = 400, "validation_error"


class Unauthenticated(ActionError):
    status, code = 401, "unauthenticated"


class Forbidden(ActionError):
    status, code = 403, "forbidden"


class NotFound(ActionError):
    status, code = 404, "not_found"


class Conflict(ActionError):
    """The request clashes with the current state (409): stale version, already taken, name in
    use."""

    status, code = 409, "conflict"


class AgentPaused(Conflict):
    """The agent is paused by a spent budget (409): no new work until it is lifted; `pause`
    in the body says which budget and why."""

    code = "agent_paused"


class RunActive(Conflict):
    """The task already has a run queued or going (409): `run` in the body is that run."""

    code = "run_active"


class RunInProgress(Conflict):
    """A pipeline whose overlap policy is skip has a run going (409): `run` in the body is its
    id."""

    code = "run_in_progress"


class RunEnded(Conflict):
    """The run has ended (aborted by an operator, lost, finished): `run` says how (409)."""

    code = "run_ended"


class TooLarge(ActionError):
    status, code = 413, "payload_too_large"


class RateLimited(ActionError):
    status, code = 429, "rate_limited"

    def __init__(self, detail: Any = None, *, retry_after: float = 1.0) -> None:
        super().__init__(detail)
        self.retry_after = max(1, round(retry_after))


class Unavailable(ActionError):
    """Not stored this time; the same request may succeed (503 with Retry-After)."""

    status, code = 503, "unavailable"
    retry_after = 1


# The codes of the statuses that carry no ActionError (method not allowed, media type …).
CODES = {
    400: "validation_error",
    401: "unauthenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    429: "rate_limited",
    500: "server_error",
    503: "unavailable",
}


def error_body(code: str, detail: Any = None, **extra: Any) -> dict[str, Any]:
    """The JSON error shape of the whole product."""
    return {"error": code, "detail": detail, **extra}


def json_error(status: int, detail: Any = None, *, code: str = "", **extra: Any) -> JsonResponse:
    """`{"error": code, "detail": ...}` with the given 4xx/5xx status; the code is the table's
    for the status (CODES), or an ActionError's own (`AgentPaused`)."""
    response = JsonResponse(error_body(code or CODES[status], detail, **extra), status=status)
    response["Cache-Control"] = "no-store"
    return response


def error_headers(error: ActionError) -> dict[str, str]:
    """The headers an error's answer carries on every transport (fast path, API views,
    streams): Retry-After on 429 and 503, the scheme on 401."""
    if isinstance(error, RateLimited):
        return {"Retry-After": str(error.retry_after)}
    if isinstance(error, Unavailable):
        return {"Retry-After": str(error.retry_after)}
    if isinstance(error, Unauthenticated):
        return {"WWW-Authenticate": "Bearer"}
    return {}


def error_response(error: ActionError) -> JsonResponse:
    """An ActionError as its JSON answer (status, body, headers): the one JSON error writer of
    Django's side; the fast path's twin (`fastpath.http.refuse`) sends the same bytes."""
    response = json_error(error.status, error.detail, code=error.code, **error.extra)
    for name, value in error_headers(error).items():
        response[name] = value
    return response
