"""DRF, project-wide: the one exception handler (the product's JSON error shape) and the
neutral default permission."""

from __future__ import annotations

from typing import Any

from rest_framework import exceptions, parsers
from rest_framework.permissions import BasePermission
from rest_framework.request import Request
from rest_framework.response import Response

from missioncontrol.errors import CODES, ActionError, RateLimited, error_body


class JSONParser(parsers.JSONParser):
    """DRF's JSON parser, with JSON nested too deeply refused as bad input (400), not a 500."""

    def parse(self, stream: Any, media_type: Any = None, parser_context: Any = None) -> Any:
        try:
            return super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise exceptions.ParseError("The JSON is nested too deeply.") from None


class Nobody(BasePermission):
    """The default: a DRF view that names no permission refuses everyone."""

    def has_permission(self, request: Request, view: Any) -> bool:
        return False


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """Every error of the DRF routes as {"error": ..., "detail": ...}: the actions' ActionErrors
    by their own status, DRF's (validation, auth, throttling, 404, 405 …) by theirs."""
    # Imported here: rest_framework.views imports the settings that name this module.
    from rest_framework.views import exception_handler as drf_exception_handler

    if isinstance(exc, ActionError):
        response = Response(exc.body(), status=exc.status)
        if isinstance(exc, RateLimited):
            response["Retry-After"] = str(exc.retry_after)
        return response
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    if isinstance(exc, exceptions.NotAuthenticated | exceptions.AuthenticationFailed):
        response.status_code = 401
    code = CODES.get(response.status_code, "error")
    detail = response.data
    if isinstance(detail, dict) and set(detail) == {"detail"}:
        detail = detail["detail"]
    response.data = error_body(code, detail)
    return response
