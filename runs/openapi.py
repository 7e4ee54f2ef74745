"""The schema of the dispatch route, a fast route (runs/fastpath.py) and so not a django-ninja
operation, added to the generated schema (missioncontrol/api.py) beside the other runs routes.
The run it answers with is the generated `RunAnswer` (the run event's own shape)."""

from __future__ import annotations

from typing import Any

from runs.actions import MAX_INSTRUCTIONS

DISPATCH_BODY = {
    "type": "object",
    "properties": {
        "instructions": {
            "type": "string",
            "maxLength": MAX_INSTRUCTIONS,
            "default": "",
            "description": "Added to the task's brief.",
        },
        "land_in": {
            "type": "string",
            "enum": ["review", "done"],
            "default": "review",
            "description": "Where the task goes when the run succeeds.",
        },
    },
}


def _error(text: str) -> dict[str, Any]:
    return {
        "description": text,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ApiError"}}},
    }


def add_paths(result: dict[str, Any]) -> dict[str, Any]:
    answer = {"application/json": {"schema": {"$ref": "#/components/schemas/RunAnswer"}}}
    result.setdefault("paths", {})["/api/v1/tasks/{task_id}/runs"] = {
        "post": {
            "operationId": "runs_api_dispatch",
            "summary": "Dispatch a task to the agent it is assigned to (202 with the queued run; "
            "with an Idempotency-Key header a retry answers 200 with the same run)",
            "tags": ["runs"],
            "parameters": [
                {
                    "name": "task_id",
                    "in": "path",
                    "required": True,
                    "schema": {"type": "integer", "minimum": 1},
                },
                {
                    "name": "Idempotency-Key",
                    "in": "header",
                    "required": False,
                    "schema": {"type": "string", "maxLength": 100},
                    "description": "The same key from the same person returns the same run.",
                },
            ],
            "security": [{"PersonTokenAuth": []}],
            "requestBody": {
                "required": False,
                "content": {"application/json": {"schema": DISPATCH_BODY}},
            },
            "responses": {
                "202": {"description": "Dispatched: the run, queued", "content": answer},
                "200": {"description": "The run this Idempotency-Key made", "content": answer},
                "400": _error("validation_error: detail maps fields to messages"),
                "401": _error("unauthenticated: no person's token (an agent's key is none)"),
                "403": _error("forbidden: below operator, or no grant on the agent's gateway"),
                "404": _error("not_found: no such task"),
                "409": _error("run_active, agent_paused or conflict (an Idempotency-Key reused)"),
                "413": _error("payload_too_large"),
                "429": _error("rate_limited (see Retry-After)"),
            },
        }
    }
    return result
