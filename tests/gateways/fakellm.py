"""A tiny OpenAI-compatible model server on loopback (PROTOCOL.md 2.6): a real gateway pointed
at it runs chats, streams replies and counts tokens and cost, with no credentials or network."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

REPLY = ["Hello", " from", " the", " fake", " model."]
PROMPT_TOKENS, COMPLETION_TOKENS = 1200, 7


class _Handler(BaseHTTPRequestHandler):
    def log_message(self, *args: Any) -> None:  # quiet
        return

    def _json(self, body: Any) -> None:
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        if self.path.rstrip("/").endswith("/models"):
            self._json({"object": "list", "data": [{"id": "fake-1", "object": "model"}]})
        else:
            self.send_error(404)

    def reply(self, request: dict[str, Any]) -> list[str]:
        """The reply's pieces, streamed one a chunk (bench/real_gateway.py echoes a stamp)."""
        return REPLY

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        request = json.loads(self.rfile.read(length) or b"{}")
        pieces = self.reply(request)
        self.server.requests.append(request)  # type: ignore[attr-defined]
        usage = {
            "prompt_tokens": PROMPT_TOKENS,
            "completion_tokens": COMPLETION_TOKENS,
            "total_tokens": PROMPT_TOKENS + COMPLETION_TOKENS,
        }
        if not request.get("stream"):
            self._json(
                {
                    "id": "cmpl-1",
                    "object": "chat.completion",
                    "model": "fake-1",
                    "choices": [
                        {
                            "index": 0,
                            "message": {"role": "assistant", "content": "".join(pieces)},
                            "finish_reason": "stop",
                        }
                    ],
                    "usage": usage,
                }
            )
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.end_headers()

        def chunk(body: dict[str, Any]) -> None:
            self.wfile.write(f"data: {json.dumps(body)}\n\n".encode())
            self.wfile.flush()

        base = {"id": "cmpl-1", "object": "chat.completion.chunk", "model": "fake-1"}
        for n, piece in enumerate(pieces):
            delta: dict[str, Any] = {"content": piece}
            if n == 0:
                delta["role"] = "assistant"
            chunk({**base, "choices": [{"index": 0, "delta": delta, "finish_reason": None}]})
        chunk({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
        chunk({**base, "choices": [], "usage": usage})
        self.wfile.write(b"data: [DONE]\n\n")
        self.wfile.flush()


class FakeModel:
    """Serves in a thread; `url` is the base URL for the gateway's provider config."""

    def __init__(self) -> None:
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self.server.requests = []  # type: ignore[attr-defined]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def start(self) -> FakeModel:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def provider_config(url: str) -> dict[str, Any]:
    """The gateway config that routes its default agent to the fake model (cost in USD per
    million tokens: input 3, output 15)."""
    return {
        "agents": {"defaults": {"model": {"primary": "fakellm/fake-1"}}},
        "models": {
            "mode": "merge",
            "catalogRefresh": {"enabled": False},
            "providers": {
                "fakellm": {
                    "baseUrl": url,
                    "apiKey": "not-a-real-key",
                    "api": "openai-completions",
                    "models": [
                        {
                            "id": "fake-1",
                            "name": "Fake 1",
                            "reasoning": False,
                            "input": ["text"],
                            "cost": {"input": 3, "output": 15, "cacheRead": 0, "cacheWrite": 0},
                            "contextWindow": 128000,
                            "maxTokens": 4096,
                        }
                    ],
                }
            },
        },
    }
