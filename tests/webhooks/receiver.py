"""A real HTTP receiver on loopback for the webhook tests: it verifies every request with the
`standardwebhooks` package's own `Webhook.verify` (a receiver no one here wrote), records what
came, and answers as the test says (a status per request, or a delay)."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from standardwebhooks.webhooks import Webhook, WebhookVerificationError


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes
    verified: Any  # the parsed body when a signature verified, else None
    error: str = ""
    complete: bool = True  # False: the body ended before its content-length (a sender killed)


@dataclass
class Receiver:
    secrets: list[str] = field(default_factory=list)  # verify with any of these
    answers: list[int] = field(default_factory=list)  # status per request (then 200)
    delay_s: float = 0.0
    got: list[Received] = field(default_factory=list)
    server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def start(self) -> Receiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                return None

            def do_POST(self) -> None:
                declared = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(declared)
                headers = {k.lower(): v for k, v in self.headers.items()}
                verified, error = None, ""
                for secret in receiver.secrets:
                    try:
                        verified = Webhook(secret).verify(body, headers)
                        break
                    except WebhookVerificationError as failed:
                        error = str(failed)
                received = Received(headers, body, verified, "" if verified else error)
                received.complete = len(body) == declared
                receiver.got.append(received)
                if receiver.delay_s:
                    time.sleep(receiver.delay_s)
                status = receiver.answers.pop(0) if receiver.answers else 200
                reply = json.dumps({"ok": status < 300, "seen": len(receiver.got)}).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("x-receiver", "tests")
                self.send_header("content-length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()

    def bodies(self) -> list[dict[str, Any]]:
        return [json.loads(r.body) for r in self.got]
