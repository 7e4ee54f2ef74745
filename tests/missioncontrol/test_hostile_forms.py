"""Form fields hostile values used to get past (issue #30 §4): the class fixes are bounded fields
(every integer a form reads has a maximum, every date field is missioncontrol.forms' bounded
one), checked by walking every form of the product; the cases the probe found, each a 4xx now."""

from __future__ import annotations

import importlib
import inspect
from pathlib import Path

import pytest
from django import forms

from missioncontrol import forms as mc_forms

ROOT = Path(__file__).resolve().parents[2]
APPS = ("missioncontrol", "tasks", "agents", "gateways", "billing", "webhooks", "crons")


def _forms() -> list[type[forms.BaseForm]]:
    found = []
    for app in APPS:
        if not (ROOT / app / "forms.py").exists():
            continue
        module = importlib.import_module(f"{app}.forms")
        for _name, cls in inspect.getmembers(module, inspect.isclass):
            if issubclass(cls, forms.BaseForm) and cls.__module__ == module.__name__:
                found.append(cls)
    return found


def test_every_number_and_date_a_form_reads_is_bounded() -> None:
    loose = []
    for cls in _forms():
        for name, field in cls.base_fields.items():  # type: ignore[attr-defined]
            where = f"{cls.__module__}.{cls.__name__}.{name}"
            bounded = getattr(field, "max_value", None) is not None or (
                isinstance(field, forms.DecimalField) and field.max_digits is not None
            )
            if isinstance(field, forms.IntegerField | forms.FloatField) and not bounded:
                loose.append(f"{where}: a number without max_value (or max_digits)")
            if isinstance(field, forms.DateTimeField) and not isinstance(
                field, mc_forms.DateTimeField
            ):
                loose.append(f"{where}: use missioncontrol.forms.DateTimeField")
            if isinstance(field, forms.DateField) and not isinstance(field, mc_forms.DateField):
                loose.append(f"{where}: use missioncontrol.forms.DateField")
    assert len(_forms()) >= 5
    assert loose == [], "\n".join(loose)


@pytest.mark.django_db(transaction=True)
def test_the_probes_form_values_are_refused_not_500(admin) -> None:
    answers = {
        "key max_uses 19 digits": admin.post(
            "/settings/keys/", {"kind": "enrollment", "name": "x", "max_uses": "9" * 19}
        ),
        "key expiring 9999-12-31": admin.post(
            "/settings/keys/", {"kind": "enrollment", "name": "y", "expires_at": "9999-12-31"}
        ),
        "key expiring 0001-01-01": admin.post(
            "/settings/keys/", {"kind": "enrollment", "name": "z", "expires_at": "0001-01-01"}
        ),
        "gateway url ws://[zz]/": admin.post(
            "/gateways/new/", {"name": "g", "url": "ws://[zz]/", "colour": "teal"}
        ),
        "check that never fires": admin.post(
            "/crons/checks/new/",
            {
                "name": "c",
                "kind": "cron",
                "expr": "0 0 30 2 *",
                "tz": "UTC",
                "grace_min": "5",
                "failure_threshold": "1",
            },
        ),
    }
    assert {k: r.status_code for k, r in answers.items() if not 400 <= r.status_code < 500} == {}
    for zone in ("UTC", "Etc/GMT-14", "Etc/GMT+12"):
        admin.cookies["mc_tz"] = zone
        for page in ("/settings/keys/", "/crons/", "/gateways/"):
            assert admin.get(page).status_code == 200, (page, zone)
