"""Secrets at rest: sealed with the installation's key, rotation, a lost key never a 500."""

from __future__ import annotations

import pytest
from cryptography.fernet import InvalidToken

from missioncontrol import secretbox


@pytest.fixture(autouse=True)
def fresh_box(settings, tmp_path):
    settings.DATA_DIR = tmp_path
    settings.MC_ENCRYPTION_KEYS = []
    secretbox.reset_cache()
    yield
    secretbox.reset_cache()


def test_seals_and_opens_with_a_private_key_file(tmp_path):
    sealed = secretbox.seal("gateway-token")
    assert sealed.startswith(secretbox.PREFIX)
    assert "gateway-token" not in sealed
    assert secretbox.open_sealed(sealed) == "gateway-token"
    key_file = tmp_path / "encryption_key"
    assert key_file.stat().st_mode & 0o777 == 0o600
    assert secretbox.seal("") == ""
    assert secretbox.open_sealed("") == ""


def test_rotation_opens_old_values_and_seals_with_the_first_key(settings):
    old, new = secretbox.new_key(), secretbox.new_key()
    settings.MC_ENCRYPTION_KEYS = [old]
    secretbox.reset_cache()
    sealed_old = secretbox.seal("t")
    settings.MC_ENCRYPTION_KEYS = [new, old]
    secretbox.reset_cache()
    assert secretbox.open_sealed(sealed_old) == "t"
    settings.MC_ENCRYPTION_KEYS = [new]
    secretbox.reset_cache()
    assert secretbox.open_sealed(secretbox.seal("t")) == "t"
    with pytest.raises(InvalidToken):
        secretbox.open_sealed(sealed_old)


def test_a_bad_key_setting_is_a_clear_configuration_error(settings):
    from django.core.exceptions import ImproperlyConfigured

    settings.MC_ENCRYPTION_KEYS = ["not-a-key"]
    secretbox.reset_cache()
    with pytest.raises(ImproperlyConfigured, match="MC_ENCRYPTION_KEYS"):
        secretbox.seal("x")


@pytest.mark.django_db
def test_a_value_no_key_opens_reads_empty_and_is_kept_on_save(settings):
    from gateways.models import Gateway

    gateway = Gateway.objects.create(name="g", url="ws://h/", token="tok")
    settings.MC_ENCRYPTION_KEYS = [secretbox.new_key()]  # the old key is lost
    secretbox.reset_cache()
    row = Gateway.objects.get(pk=gateway.pk)
    assert row.token == ""
    assert secretbox.is_sealed_broken(row.token)
    row.save()  # an unrelated save keeps the sealed text as it was
    settings.MC_ENCRYPTION_KEYS = []
    secretbox.reset_cache()
    assert Gateway.objects.get(pk=gateway.pk).token == "tok"
