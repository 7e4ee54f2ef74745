"""One error vocabulary: every API path answers JSON; actions' refusals map once per transport."""

from __future__ import annotations

import json

import pytest

from missioncontrol.errors import CODES, Conflict, Invalid, NotFound, RateLimited, error_response


class TestUnknownApiPaths:
    @pytest.mark.parametrize(
        ("method", "path"),
        [
            ("get", "/api/"),
            ("get", "/api/v1/nothing-here"),
            ("post", "/api/v1/tasks/abc/claim"),
            ("delete", "/api/v2/agents"),
            ("get", "/api/v1/agents/ada/heartbeat/extra"),
        ],
    )
    def test_answer_json_404_for_anyone(self, client, db, method, path):
        response = getattr(client, method)(path)
        assert response.status_code == 404
        assert response["Content-Type"] == "application/json"
        body = response.json()
        assert body["error"] == "not_found"
        assert path in body["detail"] or body["detail"]

    def test_a_missing_trailing_slash_redirects_like_django(self, viewer):
        response = viewer.get("/api/v1/schema")
        assert response.status_code == 301
        assert response["Location"].endswith("/api/v1/schema/")

    def test_wrong_method_on_an_api_route_is_json_405(self, client, db):
        response = client.post("/api/v1/events")
        assert response.status_code == 405
        assert response.json()["error"] == "method_not_allowed"

    def test_pages_outside_the_api_keep_the_html_404(self, viewer):
        response = viewer.get("/no/such/page/")
        assert response.status_code == 404
        assert response["Content-Type"].startswith("text/html")


class TestActionErrors:
    def test_each_kind_has_its_status_and_code(self):
        cases = [
            (Invalid({"title": ["A task needs a title."]}), 400, "validation_error"),
            (NotFound("gone"), 404, "not_found"),
            (Conflict("stale", task={"id": 1, "version": 3}), 409, "conflict"),
            (RateLimited("slow down", retry_after=2.4), 429, "rate_limited"),
        ]
        for error, status, code in cases:
            response = error_response(error)
            assert response.status_code == status
            assert json.loads(response.content)["error"] == code
        assert json.loads(error_response(cases[2][0]).content)["task"] == {"id": 1, "version": 3}
        assert error_response(cases[3][0])["Retry-After"] == "2"

    def test_form_errors_from_a_message_or_fields(self):
        assert Invalid({"title": ["x"]}).message_dict == {"title": ["x"]}
        assert NotFound("gone").message_dict == {"__all__": ["gone"]}
        assert Conflict("taken").messages == ["taken"]


class TestSmallEdges:
    def test_favicon_is_the_logo(self, client, db):
        response = client.get("/favicon.ico")
        assert response.status_code == 301
        assert "logo" in response["Location"]

    def test_partial_or_page_responses_vary_on_hx_request(self, viewer):
        response = viewer.get("/board/")
        assert response.status_code == 200
        assert "HX-Request" in response["Vary"]

    def test_api_docs_link_back_to_the_app(self, viewer):
        response = viewer.get("/api/v1/docs/")
        assert response.status_code == 200
        assert b'href="/"' in response.content


def test_every_error_code_written_is_in_the_table():
    """One vocabulary: a JSON error's code comes from CODES by its status (json_error and the
    fast path's error take no code), or is an ActionError's own: no call spells a code."""
    import ast
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    apps = ("missioncontrol", "tasks", "agents", "gateways", "billing", "webhooks", "crons")
    wrong = []
    for app in apps:
        for path in (root / app).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                if not isinstance(node, ast.Call):
                    continue
                name = getattr(node.func, "id", getattr(node.func, "attr", ""))
                if name not in ("json_error", "error"):
                    continue
                for keyword in node.keywords:
                    if keyword.arg == "code" and isinstance(keyword.value, ast.Constant):
                        wrong.append(f"{path.relative_to(root)}:{node.lineno}")
                args = node.args[1:] if name == "error" else node.args
                code = args[1] if len(args) >= 2 else None
                if isinstance(code, ast.Constant) and code.value in CODES.values():
                    wrong.append(f"{path.relative_to(root)}:{node.lineno} spells a code")
    assert wrong == []
