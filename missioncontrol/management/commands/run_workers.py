"""`manage.py run_workers`: only the background loops, for the scale-out profile."""

from __future__ import annotations

import asyncio
import signal
from typing import Any

from django.core.management.base import BaseCommand

from missioncontrol.management.commands.serve import START_CHECKS
from missioncontrol.supervisor import Supervisor


class Command(BaseCommand):
    requires_system_checks = START_CHECKS  # as serve: the API's URLconf stays unloaded
    help = "Run Mission Control's background loops without serving HTTP."

    def handle(self, *args: Any, **options: Any) -> None:
        asyncio.run(self._main())

    async def _main(self) -> None:
        supervisor = Supervisor()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        supervisor.start()
        names = ", ".join(spec.name for spec in supervisor.specs) or "none"
        self.stdout.write(f"Mission Control workers running: {names}")
        await stop.wait()
        await supervisor.stop(timeout=3.0)
