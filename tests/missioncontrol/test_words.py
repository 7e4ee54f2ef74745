"""Words a person reads: counts agree with their nouns ("1 record", not "1 records"), and the
Django admin's model lists are named in English ("deliveries", not "Deliverys")."""

from __future__ import annotations

import pytest
from django.apps import apps

from missioncontrol.templatetags.mc import counted


@pytest.mark.parametrize(
    ("n", "noun", "said"),
    [
        (1, "record", "1 record"),
        (0, "record", "0 records"),
        (1234, "token", "1,234 tokens"),
        (2, "delivery", "2 deliveries"),
        (3, "day", "3 days"),
        ("x", "run", "— runs"),
    ],
)
def test_counts_agree_with_their_nouns(n: object, noun: str, said: str) -> None:
    assert counted(n, noun) == said


def test_every_models_plural_is_english() -> None:
    wrong = [
        f"{model.__name__}: {model._meta.verbose_name_plural}"
        for model in apps.get_models()
        if str(model._meta.verbose_name_plural)[-3:-2] not in "aeiou"
        and str(model._meta.verbose_name_plural).endswith("ys")
    ]
    assert wrong == []
