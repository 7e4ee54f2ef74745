"""Fixtures of the notification tests: receivers on loopback (allowed past the SSRF guard) and
the sender, as the server runs it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from notifications import sender
from notifications.models import Message
from tests.webhooks.receiver import Receiver
from webhooks import dispatcher


@pytest.fixture
def allow_private(settings: Any) -> None:
    settings.MC_WEBHOOK_ALLOW_PRIVATE = True  # the receivers are on loopback


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver().start()
    yield r
    r.stop()


@pytest.fixture
async def messenger() -> AsyncIterator[dispatcher.Dispatcher[Message]]:
    d: dispatcher.Dispatcher[Message] = dispatcher.Dispatcher(sender.Messages())
    yield d
    await d.close()


async def send_all(d: dispatcher.Dispatcher[Message]) -> None:
    """Send whatever is due, until nothing is."""
    while await d.run_once() or d.tasks:
        await d.drain()
