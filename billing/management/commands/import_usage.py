"""`manage.py import_usage FILE.jsonl [--agent NAME]`: usage records from a file, one JSON object
a line with the API's fields (plus `agent`, the agent's name), stored as the API stores them:
priced, rolled up, and once per record id."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django.utils import timezone
from tqdm import tqdm

from agents import actions as agent_actions
from billing.actions import UsageItem, record_usage
from billing.validation import usage_item
from missioncontrol.audit import Actor
from missioncontrol.errors import ActionError

CHUNK = 1000
SHOWN_ERRORS = 20


class Command(BaseCommand):
    help = (
        "Import usage records from a JSON Lines file (the API's record fields, plus `agent`). "
        "Every line is checked first: one bad line and nothing is written."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("file", type=Path)
        parser.add_argument("--agent", default="", help="The agent of lines that name none.")

    def handle(self, *args: Any, **opts: Any) -> None:
        path: Path = opts["file"]
        if not path.is_file():
            raise CommandError(f"{path}: no such file.")
        actor = Actor.system("manage.py import_usage")
        agents: dict[str, int] = {}
        errors: list[str] = []
        lines = 0
        # Pass 1: every line checked (same rules as the API); agents looked up, not created.
        for number, raw, name in self._lines(path, opts["agent"], errors):
            lines += 1
            _item, problems = usage_item(raw, 0, timezone.now(), f"line {number}")
            for where, messages in problems.items():
                errors.append(f"{where}: {' '.join(messages)}")
            if name and name not in agents:
                agents[name] = 0
        if errors:
            for error in errors[:SHOWN_ERRORS]:
                self.stderr.write(error)
            more = len(errors) - SHOWN_ERRORS
            raise CommandError(
                f"{len(errors)} problem(s){f' ({more} more not shown)' if more > 0 else ''}; "
                "nothing was imported."
            )
        try:
            for name in agents:
                agents[name] = agent_actions.ensure_agent(actor, name).pk
        except ActionError as error:
            raise CommandError(f"agent: {error.detail}") from None
        # Pass 2: stored in chunks, each one transaction.
        stored = duplicates = 0
        batch: list[UsageItem] = []
        bar = tqdm(total=lines, unit="record", desc="importing", disable=None)

        def flush() -> None:
            nonlocal stored, duplicates
            with transaction.atomic():
                done = record_usage(batch)
            stored += sum(done)
            duplicates += len(done) - sum(done)
            bar.update(len(batch))
            batch.clear()

        for number, raw, name in self._lines(path, opts["agent"], []):
            item, _problems = usage_item(raw, agents[name], timezone.now(), f"line {number}")
            assert item is not None
            batch.append(item)
            if len(batch) >= CHUNK:
                flush()
        if batch:
            flush()
        bar.close()
        self.stdout.write(f"Imported {stored:,} records ({duplicates:,} already stored).")

    def _lines(self, path: Path, default_agent: str, errors: list[str]) -> Any:
        with path.open(encoding="utf-8", errors="replace") as handle:
            for number, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                try:
                    raw = json.loads(line)
                except ValueError:
                    errors.append(f"line {number}: not JSON.")
                    continue
                if not isinstance(raw, dict):
                    errors.append(f"line {number}: a record is a JSON object.")
                    continue
                name = raw.pop("agent", None) or default_agent
                if not isinstance(name, str) or not name:
                    errors.append(f"line {number}: no agent (give `agent`, or --agent NAME).")
                    continue
                yield number, raw, name
