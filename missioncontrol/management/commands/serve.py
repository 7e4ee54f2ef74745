"""`manage.py serve`: daphne (HTTP + WebSocket) and the background loops in one event loop.

daphne has no ASGI lifespan hook, so this builds the daphne server itself and schedules the
supervisor on the same asyncio loop that Twisted's asyncio reactor drives.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand

logger = logging.getLogger("missioncontrol.serve")


class Command(BaseCommand):
    help = "Serve Mission Control (HTTP + WebSocket) and run its background loops."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--host", default=settings.MC_HOST)
        parser.add_argument("--port", type=int, default=settings.MC_PORT)
        parser.add_argument(
            "--no-workers",
            action="store_true",
            help="Serve only; background loops run in `manage.py run_workers` (scale-out).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        # daphne.server installs the asyncio reactor on import; it must come before any
        # other import of twisted.internet.reactor (the daphne app already imported it).
        from daphne.server import Server
        from twisted.internet import reactor as twisted_reactor

        from missioncontrol.asgi import application

        reactor: Any = twisted_reactor
        from missioncontrol.supervisor import Supervisor

        host, port = options["host"], options["port"]
        supervisor = None if options["no_workers"] else Supervisor()
        interface = host.strip("[]")
        endpoint = f"tcp:port={port}:interface={interface.replace(':', chr(92) + ':')}"
        server = Server(
            application=application,
            endpoints=[endpoint],
            signal_handlers=False,
            action_logger=None,
            verbosity=0,
            server_name="missioncontrol",
        )
        stopping = False
        # Keeps the shutdown task referenced until it finishes (asyncio holds only weak refs).
        pending: set[asyncio.Future[None]] = set()

        async def shutdown() -> None:
            if supervisor is not None:
                await supervisor.stop(timeout=3.0)
            reactor.stop()

        def on_signal() -> None:
            nonlocal stopping
            if stopping:
                return
            stopping = True
            self.stdout.write("Mission Control: stopping…")
            pending.add(asyncio.ensure_future(shutdown()))

        def when_running() -> None:
            loop = asyncio.get_event_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, on_signal)
            if supervisor is not None:
                supervisor.start()
            shown = f"[{interface}]" if ":" in interface else interface
            self.stdout.write(f"Mission Control is serving on http://{shown}:{port}/")
            sys.stdout.flush()

        reactor.callWhenRunning(when_running)
        server.run()
        if server.abort_start or not server.listening_addresses:
            self.stderr.write(f"Mission Control could not listen on {host}:{port}.")
            sys.exit(1)
