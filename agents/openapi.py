"""The schema of the agent API's routes that are not django-ninja operations — the fast routes
(heartbeats, usage: agents/ingest.py) and the agents' event stream (agents/stream.py) — added to
the generated schema (missioncontrol/api.py)."""

from __future__ import annotations

from typing import Any

USAGE_ITEM = {
    "type": "object",
    "required": ["model", "input_tokens", "output_tokens"],
    "properties": {
        "id": {
            "type": "string",
            "maxLength": 128,
            "description": "Idempotency key: a record with an id already stored for this agent is counted once, ever.",
        },
        "model": {"type": "string", "maxLength": 128},
        "provider": {"type": "string", "maxLength": 64},
        "input_tokens": {"type": "integer", "minimum": 0},
        "output_tokens": {"type": "integer", "minimum": 0},
        "cache_read_tokens": {"type": "integer", "minimum": 0},
        "cache_write_tokens": {"type": "integer", "minimum": 0},
        "reasoning_tokens": {"type": "integer", "minimum": 0},
        "cost_usd": {"type": "number", "minimum": 0, "description": "As reported by the agent."},
        "session": {"type": "string", "maxLength": 128},
        "task_id": {"type": "integer", "minimum": 1},
        "occurred_at": {"type": "string", "format": "date-time", "description": "Default: now."},
    },
}
AGENT_KEY = {
    "type": "http",
    "scheme": "bearer",
    "description": "An agent key or an enrollment key (mc_…); X-Api-Key works too.",
}
ERROR = {
    "type": "object",
    "properties": {"error": {"type": "string"}, "detail": {}},
    "required": ["error", "detail"],
}
ERRORS = {
    str(code): {
        "description": text,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ApiError"}}},
    }
    for code, text in (
        (400, "validation_error: detail maps fields to messages"),
        (401, "unauthenticated"),
        (403, "forbidden: another agent's key, or an enrollment key"),
        (413, "payload_too_large"),
        (429, "rate_limited (see Retry-After)"),
    )
}


def add_lean_paths(result: dict[str, Any]) -> dict[str, Any]:
    """The generated schema with the fast routes and the event stream added."""
    schemas = result.setdefault("components", {}).setdefault("schemas", {})
    result["components"].setdefault("securitySchemes", {}).setdefault("AgentKeyAuth", AGENT_KEY)
    schemas["UsageItem"] = USAGE_ITEM
    schemas["ApiError"] = ERROR
    heartbeat_body = {
        "type": "object",
        "properties": {
            "status": {"type": "string", "enum": ["idle", "busy", "error"]},
            "task_id": {"type": "integer", "minimum": 1},
            "message": {"type": "string", "maxLength": 500},
            "usage": {
                "type": "array",
                "maxItems": 100,
                "items": {"$ref": "#/components/schemas/UsageItem"},
            },
        },
    }
    heartbeat_answer = {
        "type": "object",
        "properties": {
            "ok": {"type": "boolean"},
            "agent": {
                "type": "object",
                "properties": {
                    "name": {"type": "string"},
                    "status": {"type": "string"},
                    "last_seen": {"type": "string", "format": "date-time"},
                },
            },
            "next_heartbeat_s": {"type": "integer"},
            "usage_recorded": {"type": "integer"},
            "usage_duplicates": {"type": "integer"},
            "work": {
                "type": "object",
                "properties": {
                    "tasks": {"type": "array", "items": {"type": "object"}},
                    "runs": {
                        "type": "array",
                        "items": {"type": "object"},
                        "description": "Runs dispatched to this agent: the ones it holds (its "
                        "heartbeat renewed their leases), then queued ones it has room for, "
                        "oldest first, each with its `prompt` and `claim_url`.",
                    },
                    "stop": {
                        "type": "array",
                        "items": {"type": "integer"},
                        "description": "Ids of runs it held that an operator aborted: stop them.",
                    },
                },
            },
            "paused": {
                "type": "boolean",
                "description": "A spent budget pauses this agent: take no new work.",
            },
            "pause": {
                "type": "object",
                "description": "Present while paused: which budget, and why.",
                "properties": {
                    "budget_id": {"type": "integer"},
                    "budget": {"type": "string"},
                    "scope": {"type": "string"},
                    "period": {"type": "string", "enum": ["day", "month"]},
                    "period_start": {"type": "string", "format": "date"},
                    "spent_usd": {"type": "string"},
                    "amount_usd": {"type": "string"},
                    "reason": {"type": "string"},
                },
            },
        },
    }
    paths = result.setdefault("paths", {})
    paths["/api/v1/agents/{name}/heartbeat"] = {
        "post": {
            "operationId": "agent_heartbeat",
            "summary": "Heartbeat with optional inline usage; the answer carries the agent's work.",
            "tags": ["agents"],
            "parameters": [
                {"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}
            ],
            "security": [{"AgentKeyAuth": []}],
            "requestBody": {"content": {"application/json": {"schema": heartbeat_body}}},
            "responses": {
                "200": {
                    "description": "Stored",
                    "content": {"application/json": {"schema": heartbeat_answer}},
                },
                **ERRORS,
            },
        }
    }
    paths["/api/v1/usage"] = {
        "post": {
            "operationId": "usage_report",
            "summary": "Report token usage in bulk (idempotent by record id).",
            "tags": ["usage"],
            "security": [{"AgentKeyAuth": []}],
            "requestBody": {
                "content": {
                    "application/json": {
                        "schema": {
                            "type": "object",
                            "required": ["records"],
                            "properties": {
                                "records": {
                                    "type": "array",
                                    "maxItems": 1000,
                                    "items": {"$ref": "#/components/schemas/UsageItem"},
                                }
                            },
                        }
                    }
                }
            },
            "responses": {
                "200": {
                    "description": "Stored",
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "properties": {
                                    "recorded": {"type": "integer"},
                                    "duplicates": {"type": "integer"},
                                },
                            }
                        }
                    },
                },
                **ERRORS,
            },
        }
    }
    paths["/api/v1/events"] = {
        "get": {
            "operationId": "agent_events",
            "summary": "Server-Sent Events: changes to the agent's tasks (resume with Last-Event-ID).",
            "tags": ["agents"],
            "security": [{"AgentKeyAuth": []}],
            "responses": {
                "200": {"description": "text/event-stream; each event: {type, seq, task}"},
                **ERRORS,
            },
        }
    }
    return result
