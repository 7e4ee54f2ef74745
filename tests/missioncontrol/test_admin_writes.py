"""The Django admin writes through the actions or not at all (issue #26 §2): a write there makes
the same rows, audit entries and events as the pages, and derived data (rollups, spend, the event
log) is never editable by hand."""

from __future__ import annotations

from django.contrib import admin
from django.contrib.admin import ModelAdmin
from django.test import RequestFactory
from django_otp.plugins.otp_totp.models import TOTPDevice

from gateways.models import Gateway
from missioncontrol.models import AuditEvent, LiveEvent
from tests.gateways.factories import make_gateway

OURS = {"missioncontrol", "tasks", "agents", "gateways", "billing", "webhooks", "crons", "otp_totp"}


def _own(cls: type, name: str) -> bool:
    """Whether the admin class (not ModelAdmin itself) defines `name`."""
    return any(name in vars(k) for k in cls.__mro__ if k is not ModelAdmin and k is not object)


def test_every_writable_admin_writes_through_an_action(carol_admin) -> None:
    request = RequestFactory().get("/admin/")
    request.user = carol_admin
    carol_admin.is_superuser = True
    loose = []
    for model, model_admin in admin.site._registry.items():
        if model._meta.app_label not in OURS:
            continue
        cls = type(model_admin)
        writes = model_admin.has_add_permission(request) or model_admin.has_change_permission(
            request
        )
        if writes and not _own(cls, "save_model"):
            loose.append(f"{cls.__name__}: saves around the actions")
        if model_admin.has_delete_permission(request):
            for hook in ("delete_model", "delete_queryset"):
                if not _own(cls, hook):
                    loose.append(f"{cls.__name__}: {hook} around the actions")
        if cls.__doc__ is None:
            loose.append(f"{cls.__name__}: says nothing of why it may (not) write")
    assert loose == []


def _superuser_client(client, carol_admin):
    carol_admin.is_superuser = carol_admin.is_staff = True
    carol_admin.save(update_fields=["is_superuser", "is_staff"])
    client.force_login(carol_admin)
    return client


def test_delete_selected_gateways_goes_through_the_action(client, carol_admin) -> None:
    one, two = make_gateway("one"), make_gateway("two", url="ws://127.0.0.1:8/")
    c = _superuser_client(client, carol_admin)
    seq = LiveEvent.objects.order_by("-seq").values_list("seq", flat=True).first() or 0
    r = c.post(
        "/admin/gateways/gateway/",
        {"action": "delete_selected", "_selected_action": [one.pk, two.pk], "post": "yes"},
    )
    assert r.status_code == 302
    assert not Gateway.objects.exists()
    deleted = AuditEvent.objects.filter(verb="gateway.deleted", actor_user=carol_admin)
    assert sorted(deleted.values_list("object_id", flat=True)) == sorted([str(one.pk), str(two.pk)])
    assert LiveEvent.objects.filter(seq__gt=seq, type="gateway.deleted").count() == 2


def test_deleting_a_two_factor_device_in_the_admin_is_the_audited_reset(
    client, carol_admin, bob_operator
) -> None:
    device = TOTPDevice.objects.create(user=bob_operator, name="phone", confirmed=True)
    c = _superuser_client(client, carol_admin)
    r = c.post(f"/admin/otp_totp/totpdevice/{device.pk}/delete/", {"post": "yes"})
    assert r.status_code == 302
    assert not TOTPDevice.objects.exists()
    assert AuditEvent.objects.filter(verb__endswith="two_factor_reset").exists()


def test_usage_records_agents_and_history_cannot_be_changed_or_deleted_in_the_admin(
    client, carol_admin
) -> None:
    c = _superuser_client(client, carol_admin)
    for path in (
        "/admin/billing/usagerecord/add/",
        "/admin/agents/agent/add/",
        "/admin/missioncontrol/auditevent/add/",
        "/admin/webhooks/endpoint/add/",
    ):
        assert c.get(path).status_code == 403, path
    event = AuditEvent.objects.first()
    if event is not None:
        assert c.get(f"/admin/missioncontrol/auditevent/{event.pk}/delete/").status_code == 403


def test_no_changelist_filters_on_a_secret(client, carol_admin, bob_operator) -> None:
    """`?key__startswith=` on a changelist was an oracle for the secret (issue #30 §5): every
    admin, ours and Django's, refuses lookups that reach a secret field."""
    from agents.models import Agent, AgentKey
    from tests.agents.conftest import issue

    TOTPDevice.objects.create(user=bob_operator, name="phone", confirmed=True)
    issue(AgentKey.Kind.AGENT, Agent.objects.create(name="keyed"))
    make_gateway(token="s3cret")
    c = _superuser_client(client, carol_admin)
    for path in (
        "/admin/otp_totp/totpdevice/?key__startswith=a",
        "/admin/otp_totp/totpdevice/?user__password__startswith=m",
        "/admin/agents/agentkey/?secret_hash__startswith=a",
        "/admin/gateways/gateway/?token__startswith=s",
        "/admin/auth/user/?password__startswith=m",
        "/admin/crons/job/?token__startswith=0",
        "/admin/webhooks/endpoint/?secret__startswith=a",
    ):
        assert c.get(path).status_code == 400, path
    # Ordinary filters still work.
    assert c.get("/admin/agents/agentkey/?kind__exact=agent").status_code == 200
