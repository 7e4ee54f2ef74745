"""`manage.py create_agent_key --agent NAME` / `--enrollment`: print a new key on its own line."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from agents import actions
from agents.models import AgentKey
from missioncontrol.audit import Actor
from missioncontrol.errors import ActionError


class Command(BaseCommand):
    help = "Issue an agent API key (bound to an agent) or an enrollment key; prints the key once."

    def add_arguments(self, parser: Any) -> None:
        group = parser.add_mutually_exclusive_group(required=True)
        group.add_argument(
            "--agent", help="Name of the agent the key acts as (created if missing)."
        )
        group.add_argument(
            "--enrollment", action="store_true", help="A key that may register new agents."
        )
        parser.add_argument(
            "--max-uses", type=int, default=None, help="Enrollment keys: how many registrations."
        )
        parser.add_argument("--expires-days", type=int, default=None)
        parser.add_argument("--label", default="")

    def handle(self, *args: Any, **opts: Any) -> None:
        expires = (
            timezone.now() + timedelta(days=opts["expires_days"]) if opts["expires_days"] else None
        )
        actor = Actor.system("manage.py create_agent_key")
        agent = None
        if opts["agent"]:
            try:
                agent = actions.ensure_agent(actor, opts["agent"])
            except ActionError as error:
                raise CommandError(str(error.detail)) from None
        _key, full = actions.issue_key(
            actor,
            kind=AgentKey.Kind.AGENT if agent else AgentKey.Kind.ENROLLMENT,
            agent=agent,
            name=opts["label"],
            max_uses=opts["max_uses"],
            expires_at=expires,
        )
        self.stdout.write(full)
        # What to do with it, on stderr: `KEY=$(./mc manage create_agent_key …)` still gets the
        # key alone.
        wildcard = settings.MC_HOST in ("0.0.0.0", "::", "")  # noqa: S104 - reading it, not binding
        host = "127.0.0.1" if wildcard else settings.MC_HOST
        url = f"http{'s' if settings.MC_TLS else ''}://{host}:{settings.MC_PORT}"
        name = agent.name if agent else "my-agent"
        first = "registers the agent and keeps its own key" if agent is None else "acts as it"
        self.stderr.write(
            "Shown once: store it now. Next, where the agent runs "
            f"(the first run {first}):\n"
            f"  export MC_URL={url} MC_API_KEY={full}\n"
            f"  mc-agent run --name {name} -- your-command\n"
            "Claude Code and curl snippets: API keys, in the user menu (/settings/keys/)."
        )
