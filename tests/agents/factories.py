from __future__ import annotations

import factory
from django.utils import timezone

from agents.models import Agent
from billing.models import UsageRecord


class AgentFactory(factory.django.DjangoModelFactory[Agent]):
    class Meta:
        model = Agent
        django_get_or_create = ("name",)

    name = factory.Sequence(lambda n: f"agent-{n}")
    framework = "claude-code"


class UsageRecordFactory(factory.django.DjangoModelFactory[UsageRecord]):
    class Meta:
        model = UsageRecord

    agent = factory.SubFactory(AgentFactory)
    model = "claude-sonnet-4-5"
    input_tokens = 1200
    output_tokens = 300
    client_id = factory.Sequence(lambda n: f"call-{n}")
    occurred_at = factory.LazyFunction(timezone.now)
