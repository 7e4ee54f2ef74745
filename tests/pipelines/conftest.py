"""The pipelines' tests share the agents' fixtures: ada (a CLI agent) and her key."""

from __future__ import annotations

from tests.agents.conftest import ada, ada_key  # noqa: F401
