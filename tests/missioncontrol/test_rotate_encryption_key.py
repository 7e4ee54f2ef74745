"""`manage.py rotate_encryption_key`: every stored secret (gateway tokens, the device key,
webhook secrets) sealed again under a new key in one transaction; the old key is then not
needed; a value no key opens stops it with nothing changed."""

from __future__ import annotations

from io import StringIO

import pytest
from cryptography.fernet import Fernet, InvalidToken
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection

from gateways.models import Gateway
from missioncontrol import secretbox
from missioncontrol.audit import Actor
from missioncontrol.models import AuditEvent
from tests.gateways.factories import make_gateway
from webhooks import actions as webhook_actions
from webhooks.models import Endpoint

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def fresh_box(settings, tmp_path):
    settings.DATA_DIR = tmp_path
    settings.MC_ENCRYPTION_KEYS = []
    settings.MC_WEBHOOK_ALLOW_PRIVATE = True
    secretbox.reset_cache()
    yield
    secretbox.reset_cache()


def raw(table: str, column: str, pk: int) -> str:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {column} FROM {table} WHERE id = %s", [pk])
        return cursor.fetchone()[0]


def opens_with(key: str, sealed: str) -> str:
    return Fernet(key.encode()).decrypt(sealed[len(secretbox.PREFIX) :].encode()).decode()


@pytest.fixture
def secrets():
    gateway = make_gateway(name="prod", token="gw-token-123456")
    hook = webhook_actions.save_endpoint(
        Actor.system("t"), Endpoint(url="http://127.0.0.1:9/h", event_types=["*"])
    )
    return gateway, hook


def run(*args: str) -> str:
    out = StringIO()
    call_command("rotate_encryption_key", *args, stdout=out)
    return out.getvalue()


def test_with_the_key_file_everything_is_sealed_again_and_the_old_key_leaves(secrets, tmp_path):
    gateway, hook = secrets
    [old] = secretbox.current_keys()
    before = (
        raw("gateways_gateway", "token", gateway.pk),
        raw("webhooks_endpoint", "secret", hook.pk),
    )
    out = run()
    assert "Gateways" in out or "gateways.Gateway" in out
    [new] = (tmp_path / "encryption_key").read_text().split()
    assert new != old
    after = (
        raw("gateways_gateway", "token", gateway.pk),
        raw("webhooks_endpoint", "secret", hook.pk),
    )
    assert after[0] != before[0]
    assert after[1] != before[1]
    assert opens_with(new, after[0]) == "gw-token-123456"
    with pytest.raises(InvalidToken):
        opens_with(old, after[0])
    # Read back through the models with only the new key in force.
    secretbox.reset_cache()
    assert Gateway.objects.get(pk=gateway.pk).token == "gw-token-123456"
    assert Endpoint.objects.get(pk=hook.pk).secret == hook.secret
    assert AuditEvent.objects.filter(verb="secrets.resealed").count() == 1


def test_a_dry_run_changes_nothing(secrets, tmp_path):
    gateway, _hook = secrets
    before = raw("gateways_gateway", "token", gateway.pk)
    key_file = (tmp_path / "encryption_key").read_text()
    assert "dry run" in run("--dry-run")
    assert raw("gateways_gateway", "token", gateway.pk) == before
    assert (tmp_path / "encryption_key").read_text() == key_file
    assert not AuditEvent.objects.filter(verb="secrets.resealed").exists()


def test_with_the_variable_the_first_key_seals_everything(secrets, settings):
    gateway, _hook = secrets
    [old] = secretbox.current_keys()
    new = run("--new-key").strip()
    settings.MC_ENCRYPTION_KEYS = [new, old]
    secretbox.reset_cache()
    run()
    assert opens_with(new, raw("gateways_gateway", "token", gateway.pk)) == "gw-token-123456"
    settings.MC_ENCRYPTION_KEYS = [new]
    secretbox.reset_cache()
    assert Gateway.objects.get(pk=gateway.pk).token == "gw-token-123456"


def test_a_value_no_key_opens_stops_it_with_nothing_changed(secrets, tmp_path):
    gateway, hook = secrets
    stranger = Fernet.generate_key().decode()
    lost = secretbox.PREFIX + Fernet(stranger.encode()).encrypt(b"x").decode()
    with connection.cursor() as cursor:
        cursor.execute("UPDATE webhooks_endpoint SET secret = %s WHERE id = %s", [lost, hook.pk])
    before = raw("gateways_gateway", "token", gateway.pk)
    key_file = (tmp_path / "encryption_key").read_text()
    with pytest.raises(CommandError, match="sealed with a key not in force"):
        run()
    assert raw("gateways_gateway", "token", gateway.pk) == before
    # The file kept the old key (beside the new one that sealed nothing): everything opens.
    assert key_file.strip() in (tmp_path / "encryption_key").read_text()
    secretbox.reset_cache()
    assert Gateway.objects.get(pk=gateway.pk).token == "gw-token-123456"
