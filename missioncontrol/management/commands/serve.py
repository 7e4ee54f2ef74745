"""`manage.py serve`: daphne (HTTP + WebSocket) and the background loops in one event loop.

daphne has no ASGI lifespan hook, so this builds the daphne server itself and schedules the
supervisor on the same asyncio loop that Twisted's asyncio reactor drives.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import signal
import sys
from typing import Any

from django.conf import settings
from django.core.checks import Tags
from django.core.management.base import BaseCommand
from django.urls import get_resolver

from missioncontrol import setup

logger = logging.getLogger("missioncontrol.serve")


def skip_twisted_form_parsing() -> None:
    """Twisted parses every POST body with a form content type into `request.args`, and parses
    every POST's Content-Type with `email.message` to find out (~15 % of a heartbeat's CPU).
    daphne never reads `request.args`: it hands the raw body to the ASGI application, where
    Django parses forms itself. So daphne's requests are built with that parsing off, and
    Twisted's own (unused) access-log step is skipped."""
    from daphne import http_protocol
    from daphne import server as daphne_server

    class WebRequest(http_protocol.WebRequest):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            kwargs["parsePOSTFormSubmission"] = False
            super().__init__(*args, **kwargs)

        def handle_exception(self, exception: BaseException) -> None:
            """daphne answers an application's exception by starting a 500; when the response
            had already started, that raises inside daphne's connection-reaping loop, which
            then stops for good (every later connection leaks; issue #30 §0). The ASGI guard
            (missioncontrol/guard.py) keeps exceptions from reaching here; should one still
            arrive after the start, the connection is closed instead."""
            if not self._response_started:
                super().handle_exception(exception)
            elif not self.finished:
                self.loseConnection()

    class HTTPFactory(http_protocol.HTTPFactory):
        def buildProtocol(self, addr: Any) -> Any:
            protocol = super().buildProtocol(addr)
            protocol.requestFactory = WebRequest
            return protocol

        def log(self, request: Any) -> None:
            """daphne logs requests itself (its action logger); Twisted's access log is unused."""

    daphne_server.HTTPFactory = HTTPFactory


def freeze_startup_heap() -> None:
    """Everything loaded at start-up (Django, apps, URL patterns and views …) lives as long as
    the process: keep the cyclic GC from walking it again and again. Full collections of that
    heap took 80–140 ms every few seconds under load, stalling every request in flight; after
    this they take ~20 ms. Runs a second after start so the first request is not kept waiting."""
    get_resolver().url_patterns  # noqa: B018 - imports the URL conf and every view now
    gc.collect()
    gc.freeze()


# Every system check but the URL ones: Django's namespace check imports every URLconf, and the
# API's is loaded with its first request, not at start (missioncontrol.urls.LazyURLconf). The
# URL checks run in `manage.py check` and the suite (tests/missioncontrol/test_api_stack.py).
START_CHECKS = sorted(
    tag
    for name, tag in vars(Tags).items()
    if not name.startswith("_") and isinstance(tag, str) and tag != Tags.urls
)


class Command(BaseCommand):
    help = "Serve Mission Control (HTTP + WebSocket) and run its background loops."
    requires_system_checks = START_CHECKS

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--host", default=settings.MC_HOST)
        parser.add_argument("--port", type=int, default=settings.MC_PORT)
        parser.add_argument(
            "--no-workers",
            action="store_true",
            help="Serve only; background loops run in `manage.py run_workers` (scale-out).",
        )
        parser.add_argument(
            "--skip-setup",
            action="store_true",
            help="Do not check migrations, the first admin and static files before serving.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if not options["skip_setup"]:
            # In this process, with fast no-op paths: a restart costs no extra Django start-up.
            # Before the application is loaded: WhiteNoise indexes the static files then.
            setup.run(lambda line: self.stdout.write(line))
        # daphne.server installs the asyncio reactor on import; it must come before any
        # other import of twisted.internet.reactor (the daphne app already imported it).
        from daphne.server import Server
        from twisted.internet import reactor as twisted_reactor

        from missioncontrol.asgi import application

        reactor: Any = twisted_reactor
        from missioncontrol.supervisor import Supervisor

        skip_twisted_form_parsing()

        # The event loop's thread holds the GIL most of the time under load; threads coming back
        # from SQLite (the heartbeat writer, sync views) wait up to this long to get it back,
        # several times per transaction. 0.5 ms instead of 5 ms: measured +10 % heartbeats/s.
        sys.setswitchinterval(0.0005)
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
            loop.call_later(1.0, freeze_startup_heap)
            shown = f"[{interface}]" if ":" in interface else interface
            self.stdout.write(f"Mission Control is serving on http://{shown}:{port}/")
            # The deployment checks (`check --deploy`), one line each, where the admin looks.
            from missioncontrol.checks import deployment

            for finding in deployment():
                self.stderr.write(f"{finding.id}: {finding.msg} {finding.hint or ''}".strip())
            sys.stdout.flush()

        reactor.callWhenRunning(when_running)
        server.run()
        if server.abort_start or not server.listening_addresses:
            self.stderr.write(f"Mission Control could not listen on {host}:{port}.")
            sys.exit(1)
