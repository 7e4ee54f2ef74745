"""The Webhooks pages: admins only; forms refuse what cannot be delivered; the secret shows on
demand (audited) and never elsewhere; history, redelivery and cancelling from the pages."""

from __future__ import annotations

from typing import Any

import pytest

from missioncontrol.audit import Actor
from missioncontrol.models import AuditEvent
from tests.tasks.factories import make_task
from webhooks import actions
from webhooks.models import Attempt, Delivery, Endpoint

pytestmark = pytest.mark.django_db
ADMIN = Actor.system("tests")


@pytest.fixture
def hook(settings: Any) -> Endpoint:
    settings.MC_WEBHOOK_ALLOW_PRIVATE = True
    return actions.save_endpoint(
        ADMIN, Endpoint(url="http://127.0.0.1:9/hook", description="CI bot", event_types=["task.*"])
    )


def routes(hook: Endpoint, delivery: Delivery) -> list[tuple[str, str]]:
    return [
        ("get", "/webhooks/"),
        ("post", "/webhooks/"),
        ("get", "/webhooks/deliveries/"),
        ("get", f"/webhooks/deliveries/{delivery.pk}/"),
        ("post", f"/webhooks/deliveries/{delivery.pk}/redeliver/"),
        ("post", f"/webhooks/deliveries/{delivery.pk}/cancel/"),
        ("get", f"/webhooks/{hook.pk}/"),
        ("post", f"/webhooks/{hook.pk}/"),
        ("post", f"/webhooks/{hook.pk}/secret/"),
        ("post", f"/webhooks/{hook.pk}/rotate/"),
        ("post", f"/webhooks/{hook.pk}/test/"),
        ("post", f"/webhooks/{hook.pk}/redeliver/"),
        ("post", f"/webhooks/{hook.pk}/delete/"),
    ]


@pytest.mark.parametrize("who", ["viewer", "operator", "outsider"])
def test_only_admins_reach_any_webhook_page(request, who, hook):
    make_task("Owed")
    client = request.getfixturevalue(who)
    for method, path in routes(hook, Delivery.objects.get()):
        assert getattr(client, method)(path).status_code == 403, path
    assert Endpoint.objects.get(pk=hook.pk).secret == hook.secret  # nothing rotated, nothing gone


def test_anonymous_is_sent_to_sign_in(client, hook):
    make_task("Owed")
    for method, path in routes(hook, Delivery.objects.get()):
        response = getattr(client, method)(path)
        assert response.status_code == 302, path
        assert response["Location"].startswith("/login/")


def test_wrong_methods(admin, hook):
    make_task("Owed")
    delivery = Delivery.objects.get()
    for path in [f"/webhooks/{hook.pk}/secret/", f"/webhooks/deliveries/{delivery.pk}/cancel/"]:
        assert admin.get(path).status_code == 405
    assert admin.post("/webhooks/deliveries/").status_code == 405


def test_admin_adds_an_endpoint_with_a_generated_secret(admin, settings):
    settings.MC_WEBHOOK_ALLOW_PRIVATE = True
    response = admin.post(
        "/webhooks/",
        {
            "url": "http://127.0.0.1:9/in",
            "description": "Chat",
            "event_types": "task.*, budget.*",
            "enabled": "on",
        },
    )
    hook = Endpoint.objects.get()
    assert response.status_code == 302
    assert response["Location"] == f"/webhooks/{hook.pk}/"
    assert hook.event_types == ["budget.*", "task.*"]
    assert hook.secret.startswith("whsec_")
    page = admin.get(f"/webhooks/{hook.pk}/").content.decode()
    assert hook.secret not in page  # shown on demand only
    audit = AuditEvent.objects.get(verb="webhook.endpoint_added")
    assert hook.secret not in str(audit.changes)


@pytest.mark.parametrize(
    ("data", "field", "message"),
    [
        ({"url": "http://10.0.0.5/x", "event_types": "*"}, "url", "internal address"),
        ({"url": "ftp://example.com/x", "event_types": "*"}, "url", "Only http:// and https://"),
        (
            {"url": "https://example.com/x", "event_types": "tasks.*"},
            "event_types",
            "No event type matches tasks.*",
        ),
        ({"url": "https://example.com/x", "event_types": " , "}, "event_types", "at least one"),
    ],
)
def test_bad_endpoints_are_form_errors(admin, settings, data, field, message):
    settings.MC_WEBHOOK_ALLOW_PRIVATE = False
    response = admin.post("/webhooks/", data)
    assert response.status_code == 422
    errors = response.context["form"].errors[field]
    assert any(message in e for e in errors), errors
    assert not Endpoint.objects.exists()


def test_the_secret_shows_on_demand_and_is_audited(admin, hook):
    page = admin.post(f"/webhooks/{hook.pk}/secret/")
    assert page.status_code == 200
    assert hook.secret in page.content.decode()
    assert AuditEvent.objects.filter(verb="webhook.secret_viewed").count() == 1


def test_rotation_shows_both_secrets_during_the_grace(admin, hook):
    admin.post(f"/webhooks/{hook.pk}/rotate/")
    hook.refresh_from_db()
    html = admin.post(f"/webhooks/{hook.pk}/secret/").content.decode()
    assert hook.secret in html
    assert hook.previous_secret in html


def test_history_filters_and_an_attempts_response(admin, hook):
    make_task("One")
    make_task("Two")
    first, second = Delivery.objects.order_by("pk")
    Attempt.objects.create(
        delivery=first,
        at=first.created_at,
        duration_ms=12,
        status_code=500,
        response_headers={"x-why": "overloaded"},
        response_body='{"error": "try later"}',
    )
    Delivery.objects.filter(pk=first.pk).update(status="retrying", attempts=1)
    page = admin.get(f"/webhooks/{hook.pk}/?status=retrying")
    assert [d.pk for d in page.context["page"]] == [first.pk]
    everything = admin.get("/webhooks/deliveries/?type=task.created&hours=24")
    assert {d.pk for d in everything.context["page"]} == {first.pk, second.pk}
    detail = admin.get(f"/webhooks/deliveries/{first.pk}/").content.decode()
    assert "HTTP 500" in detail
    assert "overloaded" in detail
    assert "try later" in detail
    assert "Cancel retries" in detail


def test_redeliver_and_cancel_from_the_pages(admin, hook):
    make_task("Owed")
    delivery = Delivery.objects.get()
    admin.post(f"/webhooks/deliveries/{delivery.pk}/cancel/")
    delivery.refresh_from_db()
    assert delivery.status == "cancelled"
    admin.post(f"/webhooks/deliveries/{delivery.pk}/redeliver/")
    delivery.refresh_from_db()
    assert delivery.status == "pending"
    Delivery.objects.filter(pk=delivery.pk).update(status="failed")
    response = admin.post(f"/webhooks/{hook.pk}/redeliver/", {"since": "2000-01-01T00:00"})
    assert response.status_code == 302
    delivery.refresh_from_db()
    assert delivery.status == "pending"
    verbs = set(AuditEvent.objects.values_list("verb", flat=True))
    assert {"webhook.cancelled", "webhook.redelivered"} <= verbs


def test_a_test_event_from_the_page(admin, hook):
    response = admin.post(f"/webhooks/{hook.pk}/test/")
    delivery = Delivery.objects.get(event_type="webhook.test")
    assert response["Location"] == f"/webhooks/deliveries/{delivery.pk}/"
    assert "Not sent yet" in admin.get(response["Location"]).content.decode()


def test_deleting_an_endpoint_removes_its_history(admin, hook):
    make_task("Owed")
    admin.post(f"/webhooks/{hook.pk}/delete/")
    assert not Endpoint.objects.exists()
    assert not Delivery.objects.exists()


def test_the_navigation_offers_webhooks_to_admins_only(admin, operator):
    assert 'href="/webhooks/"' in admin.get("/board/").content.decode()
    assert 'href="/webhooks/"' not in operator.get("/board/").content.decode()


def test_an_endpoint_disabled_for_failing_is_a_banner_for_admins_only(admin, operator, hook):
    Endpoint.objects.filter(pk=hook.pk).update(
        enabled=False, disabled_reason="Disabled automatically after 20 failed attempts in a row."
    )
    page = admin.get("/board/").content.decode()
    assert "webhook-disabled" in page
    assert f'href="/webhooks/{hook.pk}/"' in page
    assert "webhook-disabled" not in operator.get("/board/").content.decode()
    # Re-enabled by hand: gone.
    hook.refresh_from_db()
    hook.enabled = True
    actions.save_endpoint(ADMIN, hook)
    assert "webhook-disabled" not in admin.get("/board/").content.decode()
