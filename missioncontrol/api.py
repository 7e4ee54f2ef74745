"""The JSON API under `/api/v1/`: one django-ninja API for every agent- and operator-facing route
(issue #26 §3; the choice and its measurements are in docs/design.md, "One API stack").

- Inputs are pydantic schemas (the same types the MCP server's tools will take), the OpenAPI
  schema is generated from the routes themselves and served at `/api/v1/schema/` with Swagger UI
  at `/api/v1/docs/` (local assets, no inline script).
- Authentication is `AgentKeyAuth`: `agents.keys.authenticate`, the one agent-key check (the
  fast routes call its async twin).
- Every refusal is `{"error": code, "detail": ...}` written by `errors.error_response`, the one
  JSON error writer: actions' `ActionError`s, pydantic's validation errors (400, detail by
  field), ninja's own (unparseable body, 404, 405).
- The fast routes (heartbeats, usage: `missioncontrol/asgi.py`) and the agents' event stream
  are not ninja operations; their schema is added to the generated one (agents/openapi.py).

This module is imported on the first request under /api/v1/ (missioncontrol/urls.py mounts it
as a lazy, namespaced URLconf): a server whose agents only heartbeat never loads pydantic for it.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Annotated, Any

from django.http import Http404, HttpRequest, HttpResponse, HttpResponseNotAllowed
from django.shortcuts import render
from ninja import NinjaAPI, Schema
from ninja.errors import AuthenticationError, HttpError
from ninja.errors import ValidationError as NinjaValidationError
from ninja.openapi.docs import DocsBase
from ninja.security import HttpBearer
from pydantic import AfterValidator, Field

from agents import keys
from missioncontrol import tokens
from missioncontrol.errors import (
    CODES,
    ActionError,
    Forbidden,
    Unauthenticated,
    error_response,
    json_error,
)


def _storable(value: str) -> str:
    """A string every database stores as it is: no NUL, no lone surrogates."""
    from agents import validation

    problem = validation.text_problem(value)
    if problem:
        raise ValueError(problem)
    return value


def Text(max_length: int) -> Any:
    """A string input of at most `max_length` characters that every database stores as is."""
    return Annotated[str, Field(max_length=max_length), AfterValidator(_storable)]


class ApiError(Schema):
    """Every refusal: `{"error": code, "detail": ...}` (missioncontrol/errors.py)."""

    error: str
    detail: Any = None


class AgentKeyAuth(HttpBearer):
    """An agent's own key (`Authorization: Bearer <key>` or `X-Api-Key`); with
    `enrollment_ok`, an enrollment key too (registration). `request.auth` is its KeyInfo."""

    def __init__(self, *, enrollment_ok: bool = False) -> None:
        super().__init__()
        self.enrollment_ok = enrollment_ok

    def __call__(self, request: HttpRequest) -> keys.KeyInfo | None:
        if tokens.is_token(tokens.bearer(request.headers.get("Authorization"))):
            return None  # a person's token: PersonTokenAuth's, where a route takes one
        return keys.authenticate(
            request.headers.get("Authorization"),
            request.headers.get("X-Api-Key"),
            enrollment_ok=self.enrollment_ok,
        )

    def authenticate(self, request: HttpRequest, token: str) -> Any:  # pragma: no cover
        raise NotImplementedError  # __call__ reads both headers itself


class PersonTokenAuth(HttpBearer):
    """A person's API token (`Authorization: Bearer mct_…`), acting with that person's role
    (at least `least`) and gateway grants. `request.auth` is the user."""

    def __init__(self, *, least: str = "viewer") -> None:
        super().__init__()
        self.least = least

    def __call__(self, request: HttpRequest) -> Any:
        authorization = request.headers.get("Authorization")
        if not tokens.is_token(tokens.bearer(authorization)):
            return None  # an agent's key, or nothing: another auth's (or a 401)
        return tokens.authenticate(authorization, least=self.least)

    def authenticate(self, request: HttpRequest, token: str) -> Any:  # pragma: no cover
        raise NotImplementedError  # __call__ reads the header itself


def field_errors(errors: list[dict[str, Any]]) -> dict[str, list[str]]:
    """pydantic's errors as the product's `{field: [messages]}` (the body's fields by name,
    nested ones dotted; `body` for the body as a whole)."""
    found: dict[str, list[str]] = {}
    for item in errors:
        where = [str(p) for p in item.get("loc", ())]
        # (source, [the body parameter's name,] field …)
        if where and where[0] in ("body", "query", "path", "header"):
            source, where = where[0], where[1:]
            if source == "body" and where[:1] == ["body"]:
                where = where[1:]
        message = str(item.get("msg", "Invalid."))
        message = message.removeprefix("Value error, ")
        found.setdefault(".".join(where) or "body", []).append(message)
    return found


class Docs(DocsBase):
    """Swagger UI from django-ninja's own files, served as static files (no CDN), started by
    static/js/api-docs.js (no inline script), with the way back to the app."""

    def render_page(self, request: HttpRequest, api: NinjaAPI, **kwargs: Any) -> HttpResponse:
        return render(request, "api/docs.html", {"schema_url": self.get_openapi_url(api, kwargs)})


def viewer_or_key(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """The schema and docs: a person with a role (their session), or any agent key."""

    @wraps(view)
    def guarded(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        from missioncontrol.roles import has_role

        try:
            if request.headers.get("Authorization") or request.headers.get("X-Api-Key"):
                keys.authenticate(
                    request.headers.get("Authorization"),
                    request.headers.get("X-Api-Key"),
                    enrollment_ok=True,
                )
            elif not request.user.is_authenticated:
                raise Unauthenticated("Sign in, or send an agent key.")
            elif not has_role(request.user, "viewer"):
                raise Forbidden("This needs a role in Mission Control.")
        except ActionError as refused:
            return error_response(refused)
        if request.method not in ("GET", "HEAD"):
            refused_method = json_error(405, "Use GET.")
            refused_method["Allow"] = "GET, HEAD"
            return refused_method
        return view(request, *args, **kwargs)

    return guarded


ROOT = "/api/v1/"
NO_CREDENTIAL = (
    "Send an API key as 'Authorization: Bearer <key>': an agent's key (mc_…) for the agent "
    "routes, a person's API token (mct_…) for the operator routes."
)


def build() -> NinjaAPI:
    from agents import api as agents_api
    from agents import openapi
    from runs import openapi as runs_openapi

    class API(NinjaAPI):
        def get_root_path(self, path_params: dict[str, Any]) -> str:
            return ROOT  # without ninja's root page (agents/api_urls.py)

        def get_openapi_schema(self, **kwargs: Any) -> Any:
            schema = openapi.add_lean_paths(super().get_openapi_schema(**kwargs))
            return runs_openapi.add_paths(schema)

    api = API(
        title="Mission Control API",
        version="1",
        description=(
            "For agents reporting directly: register, heartbeats with inline token usage, bulk "
            "usage, their tasks and their event stream. Authenticate with "
            "`Authorization: Bearer <key>` (or `X-Api-Key`)."
        ),
        urls_namespace="api",
        openapi_url="/schema/",
        docs_url="/docs/",
        docs=Docs(),
        docs_decorator=viewer_or_key,
    )

    @api.exception_handler(ActionError)
    def refused(request: HttpRequest, exc: ActionError) -> HttpResponse:
        return error_response(exc)

    @api.exception_handler(NinjaValidationError)
    def invalid(request: HttpRequest, exc: NinjaValidationError) -> HttpResponse:
        return json_error(400, field_errors(exc.errors))

    @api.exception_handler(AuthenticationError)
    def unauthenticated(request: HttpRequest, exc: AuthenticationError) -> HttpResponse:
        return error_response(Unauthenticated(NO_CREDENTIAL))

    @api.exception_handler(HttpError)
    def http_error(request: HttpRequest, exc: HttpError) -> HttpResponse:
        # Ninja's own: a body that is not JSON (400) and the like.
        if exc.status_code == 400:
            return json_error(400, {"body": [f"{exc.message}: it is not valid JSON."]})
        return json_error(exc.status_code if exc.status_code in CODES else 400, exc.message)

    @api.exception_handler(Http404)
    def not_found(request: HttpRequest, exc: Http404) -> HttpResponse:
        return json_error(404, f"No API endpoint at {request.path}.")

    from pipelines import api as pipelines_api
    from runs import api as runs_api
    from tasks import api as tasks_api

    api.add_router("/", agents_api.router)
    api.add_router("/", tasks_api.router)
    api.add_router("/", runs_api.router)
    api.add_router("/", pipelines_api.router)
    return api


def json_refusals(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """Ninja answers a method a path lacks with a plain-text 405: ours is JSON, like every
    refusal under /api/."""

    @wraps(view)
    def answered(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        response = view(request, *args, **kwargs)
        if isinstance(response, HttpResponseNotAllowed):
            allowed = response["Allow"]
            refused = json_error(405, f"Use {allowed}.")
            refused["Allow"] = allowed
            return refused
        return response

    return answered
