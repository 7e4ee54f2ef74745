"""The notification pages and the add_channel command: a channel is checked where it is
written (the SSRF guard, e-mail addresses, e-mail set up at all), its target never shown again
in full, rules saved with clear errors, a test message queued; each person's own page."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.management import CommandError, call_command
from django.test import Client

from missioncontrol.models import AuditEvent
from notifications.models import Channel, Message, Rule

pytestmark = pytest.mark.django_db
HOOK = "http://127.0.0.1:9/services/T000/B000/very-secret-token"


def test_an_admin_adds_a_team_channel_and_its_secret_url_is_not_shown_again(
    admin: Client, allow_private: None
) -> None:
    response = admin.post(
        "/settings/notifications/", {"kind": "slack", "name": "Ops room", "target": HOOK}
    )
    channel = Channel.objects.get()
    assert response.status_code == 302
    assert response["Location"] == f"/settings/notifications/{channel.pk}/"
    assert channel.target == HOOK
    assert channel.owner is None
    assert Rule.objects.get(channel=channel).kinds  # a rule of its own, with the defaults
    page = admin.get(f"/settings/notifications/{channel.pk}/").content.decode()
    assert "very-secret-token" not in page
    assert "http://127.0.0.1/…" in page
    listing = admin.get("/settings/notifications/").content.decode()
    assert "Ops room" in listing
    assert "very-secret-token" not in listing
    assert AuditEvent.objects.filter(verb="notification.channel_added").exists()
    assert "very-secret-token" not in str(
        AuditEvent.objects.get(verb="notification.channel_added").changes
    )


def test_an_internal_or_malformed_target_is_a_form_error(admin: Client) -> None:
    internal = admin.post(
        "/settings/notifications/", {"kind": "discord", "name": "x", "target": HOOK}
    )
    assert internal.status_code == 422
    assert "internal address" in internal.content.decode()
    bad = admin.post(
        "/settings/notifications/", {"kind": "teams", "name": "x", "target": "ftp://x"}
    )
    assert bad.status_code == 422
    assert "Only http:// and https://" in bad.content.decode()
    assert not Channel.objects.exists()


def test_email_needs_an_smtp_server_and_real_addresses(admin: Client, settings: Any) -> None:
    settings.MC_EMAIL_URL = ""
    missing = admin.post(
        "/settings/notifications/", {"kind": "email", "name": "Ops", "target": "ops@example.com"}
    )
    assert missing.status_code == 422
    assert "MC_EMAIL_URL" in missing.content.decode()
    settings.MC_EMAIL_URL = "smtp://127.0.0.1:2525"
    wrong = admin.post(
        "/settings/notifications/", {"kind": "email", "name": "Ops", "target": "ops@, x"}
    )
    assert wrong.status_code == 422
    assert "is not an e-mail address" in wrong.content.decode()
    good = admin.post(
        "/settings/notifications/",
        {"kind": "email", "name": "Ops", "target": " ops@example.com ,oncall@example.com"},
    )
    assert good.status_code == 302
    assert Channel.objects.get().target == "ops@example.com, oncall@example.com"


def test_a_team_channels_rule_is_saved_and_checked(admin: Client, allow_private: None) -> None:
    admin.post("/settings/notifications/", {"kind": "ntfy", "name": "Phones", "target": HOOK})
    channel = Channel.objects.get()
    url = f"/settings/notifications/{channel.pk}/"
    rule = {
        "form": "rule",
        "kinds": ["gateway", "budget"],
        "max_severity": "1",
        "quiet_start": "22:00",
        "time_zone": "Europe/Berlin",
        "digest": "",
        "coalesce_minutes": "10",
        "urgent_in_quiet": "on",
    }
    half = admin.post(url, rule)
    assert half.status_code == 422
    assert "Give both ends of the quiet hours" in half.content.decode()
    assert admin.post(url, {**rule, "quiet_end": "07:00"}).status_code == 302
    saved = Rule.objects.get(channel=channel)
    assert saved.kinds == ["gateway", "budget"]
    assert saved.max_severity == 1
    assert f"{saved.quiet_start:%H:%M}-{saved.quiet_end:%H:%M}" == "22:00-07:00"
    assert not saved.resolved  # unticked
    unknown = admin.post(url, {**rule, "quiet_end": "07:00", "time_zone": "Mars/Olympus"})
    assert unknown.status_code == 422


def test_send_test_queues_one_message_for_that_channel(admin: Client, allow_private: None) -> None:
    admin.post("/settings/notifications/", {"kind": "slack", "name": "Ops", "target": HOOK})
    channel = Channel.objects.get()
    response = admin.post(f"/settings/notifications/{channel.pk}/test/")
    assert response.status_code == 302
    message = Message.objects.get()
    assert message.channel == channel
    assert message.body["kind"] == "test"
    assert "test message" in admin.get(f"/settings/notifications/{channel.pk}/").content.decode()


def test_a_person_sets_their_own_email_and_rule(
    viewer: Client, alice_viewer: Any, settings: Any
) -> None:
    settings.MC_EMAIL_URL = "smtp://127.0.0.1:2525"
    viewer.cookies["mc_tz"] = "Asia/Tokyo"
    page = viewer.get("/account/notifications/").content.decode()
    assert alice_viewer.email in page  # offered as the address
    added = viewer.post(
        "/account/notifications/",
        {"form": "channel", "kind": "email", "name": "Me", "target": alice_viewer.email},
    )
    assert added.status_code == 302
    channel = Channel.objects.get()
    assert channel.owner == alice_viewer
    rule = Rule.objects.get(user=alice_viewer)
    assert rule.time_zone == "Asia/Tokyo"  # the person's zone, from their browser
    # A person may not add a team's kinds (Slack) for themselves, nor touch someone else's.
    slack = viewer.post(
        "/account/notifications/",
        {"form": "channel", "kind": "slack", "name": "x", "target": HOOK},
    )
    assert slack.status_code == 422
    assert viewer.post(f"/account/notifications/{channel.pk}/toggle/").status_code == 302
    assert not Channel.objects.get().enabled


def test_people_cannot_reach_each_others_channels(
    viewer: Client, operator: Client, alice_viewer: Any, settings: Any
) -> None:
    settings.MC_EMAIL_URL = "smtp://127.0.0.1:2525"
    viewer.post(
        "/account/notifications/",
        {"form": "channel", "kind": "email", "name": "Me", "target": alice_viewer.email},
    )
    channel = Channel.objects.get()
    assert operator.post(f"/account/notifications/{channel.pk}/toggle/").status_code == 404
    operator.post(f"/account/notifications/{channel.pk}/delete/")
    operator.post(f"/account/notifications/{channel.pk}/test/")
    assert Channel.objects.filter(pk=channel.pk, enabled=True).exists()
    assert not Message.objects.exists()


def test_add_channel_from_the_command_line(allow_private: None) -> None:
    call_command("add_channel", "discord", HOOK, "--name", "Alerts", "--kinds", "gateway,cron")
    channel = Channel.objects.get()
    assert channel.name == "Alerts"
    assert channel.kind == "discord"
    assert Rule.objects.get(channel=channel).kinds == ["gateway", "cron"]
    call_command("add_channel", "ntfy", HOOK)
    everything = Rule.objects.get(channel__kind="ntfy")
    from missioncontrol.overview import NOTIFY_KINDS

    assert everything.kinds == list(NOTIFY_KINDS)
    with pytest.raises(CommandError, match="Unknown kinds: pager"):
        call_command("add_channel", "slack", HOOK, "--kinds", "pager")
    with pytest.raises(CommandError, match="Only http"):
        call_command("add_channel", "slack", "file:///etc/passwd")


@pytest.mark.parametrize(
    ("url", "tls", "ssl", "port"),
    [
        ("smtp+tls://me:p%40ss@smtp.example.com:587", True, False, 587),
        ("smtp+ssl://me:pass@smtp.example.com:465", False, True, 465),
        ("smtp://localhost:25", False, False, 25),
    ],
)
def test_the_readmes_email_urls_configure_the_mailer(
    url: str, tls: bool, ssl: bool, port: int
) -> None:
    import json
    import os
    import subprocess
    import sys

    from tests.live import ROOT

    code = (
        "import json; from missioncontrol import settings as s; "
        "print(json.dumps(s.MAILERS['default']['OPTIONS']))"
    )
    env = {**os.environ, "MC_EMAIL_URL": url, "DJANGO_SETTINGS_MODULE": "missioncontrol.settings"}
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    options = json.loads(done.stdout.strip().splitlines()[-1])
    assert (options["use_tls"], options["use_ssl"], options["port"]) == (tls, ssl, port)
    if "p%40ss" in url:
        assert options["password"] == "p@ss"


def test_the_user_menu_leads_to_both_pages(admin: Client, viewer: Client) -> None:
    admin_page = admin.get("/").content.decode()
    assert 'href="/settings/notifications/"' in admin_page
    assert 'href="/account/notifications/"' in admin_page
    viewer_page = viewer.get("/").content.decode()
    assert 'href="/account/notifications/"' in viewer_page
    assert 'href="/settings/notifications/"' not in viewer_page


def test_a_channels_target_is_sealed_at_rest(admin: Client, allow_private: None) -> None:
    from django.db import connection

    admin.post("/settings/notifications/", {"kind": "slack", "name": "Ops", "target": HOOK})
    with connection.cursor() as cursor:
        cursor.execute("SELECT target FROM notifications_channel")
        stored = cursor.fetchone()[0]
    assert "very-secret-token" not in stored
    assert Channel.objects.get().target == HOOK


def test_links_in_messages_use_the_public_url(settings: Any, allow_private: None) -> None:
    from tests.notifications.helpers import down, step, team_channel

    settings.MC_PUBLIC_URL = "https://mc.example.com/"
    team_channel()
    gateway = down("prod")
    (message,) = step()
    assert message.body["items"][0]["url"] == f"https://mc.example.com/gateways/{gateway.pk}/"
    assert message.body["url"] == "https://mc.example.com/"
