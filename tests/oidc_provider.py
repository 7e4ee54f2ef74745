"""A small OpenID Connect provider on loopback for the single sign-on tests.

Real HTTP, real RS256-signed ID tokens, a real JWKS, the authorization code flow with PKCE
(S256) checked at the token endpoint: what mozilla-django-oidc talks to in production, minus
a login form. The person who "signs in" at /authorize is `provider.person` (claims), so a test
sets who arrives; `provider.refuse_token` makes the token endpoint refuse the code.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

CLIENT_ID = "mission-control"
CLIENT_SECRET = "s3cret-for-tests"


class Provider:
    def __init__(self) -> None:
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.kid = "test-key-1"
        self.person: dict[str, Any] = {"sub": "u-1", "email": "ada@example.test"}
        self.refuse_token = False
        self.codes: dict[str, dict[str, Any]] = {}
        self.tokens: dict[str, dict[str, Any]] = {}
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.issuer = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def start(self) -> Provider:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def discovery(self) -> dict[str, Any]:
        return {
            "issuer": self.issuer,
            "authorization_endpoint": f"{self.issuer}/authorize",
            "token_endpoint": f"{self.issuer}/token",
            "userinfo_endpoint": f"{self.issuer}/userinfo",
            "jwks_uri": f"{self.issuer}/jwks",
            "response_types_supported": ["code"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "code_challenge_methods_supported": ["S256"],
        }

    def jwks(self) -> dict[str, Any]:
        public = json.loads(RSAAlgorithm.to_jwk(self.key.public_key()))
        public.update({"kid": self.kid, "use": "sig", "alg": "RS256"})
        return {"keys": [public]}

    def authorize(self, query: dict[str, str]) -> str:
        """The redirect back to the client, as if the person had signed in here."""
        assert query["client_id"] == CLIENT_ID
        assert query["response_type"] == "code"
        code = secrets.token_urlsafe(16)
        self.codes[code] = {**query, "person": dict(self.person)}
        back = {"code": code, "state": query["state"]}
        return f"{query['redirect_uri']}?{urlencode(back)}"

    def token(self, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
        grant = self.codes.pop(form.get("code", ""), None)
        if self.refuse_token or grant is None:
            return 400, {"error": "invalid_grant", "error_description": "unknown code"}
        if (form.get("client_id"), form.get("client_secret")) != (CLIENT_ID, CLIENT_SECRET):
            return 401, {"error": "invalid_client"}
        if form.get("redirect_uri") != grant["redirect_uri"]:
            return 400, {"error": "invalid_grant", "error_description": "redirect_uri differs"}
        verifier = form.get("code_verifier", "")
        challenge = (
            base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
            .rstrip(b"=")
            .decode()
        )
        if grant.get("code_challenge") and challenge != grant["code_challenge"]:
            return 400, {"error": "invalid_grant", "error_description": "PKCE check failed"}
        now = int(time.time())
        person = grant["person"]
        claims = {
            "iss": self.issuer,
            "aud": CLIENT_ID,
            "iat": now,
            "exp": now + 300,
            "nonce": grant.get("nonce"),
            **{k: v for k, v in person.items() if k in ("sub", "groups")},
        }
        id_token = jwt.encode(claims, self.key, algorithm="RS256", headers={"kid": self.kid})
        access = secrets.token_urlsafe(16)
        self.tokens[access] = person
        return 200, {"access_token": access, "token_type": "Bearer", "id_token": id_token}

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        provider = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _json(self, status: int, body: dict[str, Any]) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                parts = urlsplit(self.path)
                query = {k: v[0] for k, v in parse_qs(parts.query).items()}
                if parts.path == "/.well-known/openid-configuration":
                    self._json(200, provider.discovery())
                elif parts.path == "/jwks":
                    self._json(200, provider.jwks())
                elif parts.path == "/authorize":
                    self.send_response(302)
                    self.send_header("Location", provider.authorize(query))
                    self.end_headers()
                elif parts.path == "/userinfo":
                    bearer = self.headers.get("Authorization", "").removeprefix("Bearer ")
                    person = provider.tokens.get(bearer)
                    if person is None:
                        self._json(401, {"error": "invalid_token"})
                    else:
                        self._json(200, person)
                else:
                    self._json(404, {"error": "not_found"})

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                form = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
                if urlsplit(self.path).path == "/token":
                    self._json(*provider.token(form))
                else:
                    self._json(404, {"error": "not_found"})

        return Handler
