from __future__ import annotations

from typing import Any

import factory
from django.contrib.auth import get_user_model

from missioncontrol.roles import Role, set_role


class UserFactory(factory.django.DjangoModelFactory[Any]):
    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda u: f"{u.username}@example.com")
    password = factory.PostGenerationMethodCall("set_password", "correct horse battery")

    @factory.post_generation
    def role(obj: Any, create: bool, extracted: Role | None, **kwargs: object) -> None:
        obj.save()
        if extracted:
            set_role(obj, extracted)
