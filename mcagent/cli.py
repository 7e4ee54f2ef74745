"""mc-agent: heartbeats, usage reports and a Claude Code hook for Mission Control.

    mc-agent run --name NAME [--interval 30] -- COMMAND ...
    mc-agent work --name NAME [--poll 5] [--once] -- COMMAND ... {prompt} ...
    mc-agent heartbeat [--name NAME] [--status idle|busy|error] [--message TEXT]
    mc-agent report [--name NAME] --model M --input N --output N [--cache-read N] [--cache-write N] [--id ID]
    mc-agent claude-hook [--name NAME]        (reads Claude Code's hook JSON on stdin)
    mc-agent mcp [--name NAME]                (Mission Control's MCP server, over stdio)

`work` makes COMMAND a worker: it waits for runs dispatched to the agent (from a task's page or
the API), claims one, runs COMMAND with the run's brief in place of `{prompt}` (or on its stdin
when no argument holds `{prompt}`), says what it is doing from the command's last output line,
and finishes the run with the command's output as its reply (exit 0) or as failed with the end
of its stderr. A line `MC_USAGE {"model": ..., "input_tokens": ..., "output_tokens": ...}`
printed by the command (stdout or stderr) is reported as the run's token usage and left out of
the reply. An operator's abort stops the command; Ctrl-C gives the run back (queued again).

While a spent budget pauses the agent, `run` starts nothing and exits with code 75
(EX_TEMPFAIL: try again later), printing the budget and why; a run already going is not
stopped. `heartbeat` prints `"paused": true` and the reason.

`mcp` is for MCP clients that only launch commands: it speaks MCP on stdin/stdout and forwards
each message to Mission Control's MCP endpoint (MC_URL/mcp/, Streamable HTTP) with the agent's key
(its key file, else MC_API_KEY) or a person's API token (MC_API_KEY=mct_…: the operators' tools).

Configuration: MC_URL (e.g. http://127.0.0.1:3200) and MC_API_KEY (the agent's key, or an
enrollment key: the first run registers the agent and keeps its own key in
~/.config/mission-control/agents/NAME.key, mode 0600). MC_AGENT_NAME names the agent when
--name is not given. Only the standard library is used, so it runs in any Python >= 3.9.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

TIMEOUT_S = 10
USAGE_CHUNK = 1000
# sysexits.h EX_TEMPFAIL: not now, try again later (a spent budget pauses the agent).
EXIT_PAUSED = 75


class ApiError(Exception):
    def __init__(self, status: int, body: Any) -> None:
        super().__init__(f"HTTP {status}: {body}")
        self.status = status
        self.body = body


def say(message: str) -> None:
    print(f"mc-agent: {message}", file=sys.stderr, flush=True)


class Client:
    def __init__(self, url: str, key: str) -> None:
        if not url.startswith(("http://", "https://")):
            raise SystemExit(f"mc-agent: MC_URL must start with http:// or https://, not {url!r}")
        self.url = url.rstrip("/")
        self.key = key

    def post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        data = json.dumps(body).encode()
        request = urllib.request.Request(  # noqa: S310 - http(s) only, checked in __init__
            f"{self.url}{path}",
            data=data,
            method="POST",
            headers={
                "Authorization": f"Bearer {self.key}",
                "Content-Type": "application/json",
                "User-Agent": "mc-agent",
            },
        )
        try:
            with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:  # noqa: S310 - the configured server
                return json.loads(response.read() or b"{}")
        except urllib.error.HTTPError as error:
            try:
                payload = json.loads(error.read() or b"{}")
            except ValueError:
                payload = {}
            raise ApiError(error.code, payload) from None


def key_file(name: str) -> Path:
    base = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")
    return base / "mission-control" / "agents" / f"{name}.key"


def agent_name(args: argparse.Namespace) -> str:
    return (
        args.name
        or os.environ.get("MC_AGENT_NAME")
        or f"agent-{socket.gethostname().split('.')[0]}"
    )


def connect(name: str) -> Client:
    """A client holding this agent's own key (registering first with an enrollment key)."""
    url = os.environ.get("MC_URL", "http://127.0.0.1:3200")
    stored = key_file(name)
    if stored.exists():
        return Client(url, stored.read_text().strip())
    key = os.environ.get("MC_API_KEY", "")
    if not key:
        raise SystemExit("mc-agent: set MC_API_KEY to the agent's key (or an enrollment key).")
    client = Client(url, key)
    answer = with_retries(
        lambda: client.post(
            "/api/v1/agents/register",
            {"name": name, "framework": os.environ.get("MC_AGENT_FRAMEWORK", "")},
        ),
        attempts=5,
    )
    if answer.get("api_key"):
        stored.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(stored, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(answer["api_key"] + "\n")
        say(f"registered {name}; its key is kept in {stored}")
        return Client(url, answer["api_key"])
    return client


def with_retries(call: Any, attempts: int = 6) -> Any:
    """Retry network failures and 5xx/429 with capped, jittered back-off; 4xx is final."""
    delay = 0.5
    for attempt in range(attempts):
        try:
            return call()
        except ApiError as error:
            if error.status < 500 and error.status != 429:
                detail = error.body.get("detail") if isinstance(error.body, dict) else error.body
                raise SystemExit(f"mc-agent: refused ({error.status}): {detail}") from None
            problem = f"server answered {error.status}"
        except (urllib.error.URLError, OSError) as error:
            problem = f"cannot reach the server ({getattr(error, 'reason', error)})"
        if attempt == attempts - 1:
            raise ConnectionError(problem)
        time.sleep(delay * random.uniform(0.8, 1.2))
        delay = min(delay * 2, 15)
    raise ConnectionError("unreachable")


def heartbeat(
    client: Client,
    name: str,
    status: str,
    message: str | None = None,
    usage: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    body: dict[str, Any] = {"status": status}
    if message:
        body["message"] = message[:500]
    if usage:
        body["usage"] = usage
    return client.post(f"/api/v1/agents/{name}/heartbeat", body)


# --- run ---------------------------------------------------------------------------------------


def cmd_run(args: argparse.Namespace) -> int:
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        raise SystemExit(
            "mc-agent run: give the command after --, e.g. mc-agent run --name bot -- claude -p 'fix it'"
        )
    name = agent_name(args)
    try:
        client = connect(name)
    except ConnectionError as error:
        say(f"{error}; running the command without reporting")
        client = None
    if client is not None:
        # Ask first: a paused agent takes no new work (the answer says why).
        try:
            answer = heartbeat(client, name, "idle", f"starting: {' '.join(command)[:200]}")
        except (ApiError, OSError, urllib.error.URLError) as error:
            say(f"heartbeat failed ({error}); running the command anyway")
        else:
            if answer.get("paused"):
                reason = (answer.get("pause") or {}).get("reason") or "a budget is spent"
                say(f"paused, not starting: {reason}")
                # Its page must not keep saying "starting" for a command that never ran.
                with contextlib.suppress(ApiError, OSError, urllib.error.URLError):
                    heartbeat(
                        client, name, "idle", f"not started (paused): {' '.join(command)[:180]}"
                    )
                return EXIT_PAUSED
    stop = threading.Event()
    interval = args.interval

    def beat_loop() -> None:
        # Never blocks the child: failures are reported once and retried on the next beat.
        failing = False
        while not stop.is_set():
            if client is not None:
                try:
                    answer = heartbeat(client, name, "busy", f"running: {' '.join(command)[:200]}")
                    if failing:
                        say("reporting again")
                    failing = False
                    if answer.get("paused") and not warned_paused[0]:
                        reason = (answer.get("pause") or {}).get("reason") or ""
                        say(f"paused by a budget ({reason}); this run goes on, no new one starts")
                        warned_paused[0] = True
                    nonlocal_interval[0] = max(1, int(answer.get("next_heartbeat_s") or interval))
                except (ApiError, OSError, urllib.error.URLError) as error:
                    if not failing:
                        say(f"heartbeat failed ({error}); the command keeps running, retrying")
                    failing = True
            stop.wait(min(interval, nonlocal_interval[0]) if not failing else min(5, interval))

    nonlocal_interval = [interval]
    warned_paused = [False]
    thread = threading.Thread(target=beat_loop, daemon=True)
    thread.start()
    tail = StderrTail()
    try:
        child = subprocess.Popen(command, stderr=subprocess.PIPE)
    except FileNotFoundError:
        stop.set()
        say(f"command not found: {command[0]}")
        code = 127
        child = None
    if child is not None:
        # Forward Ctrl-C / TERM to the child; its exit code is ours.
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda s, _f: child.send_signal(s))
        tail.follow(child)
        code = child.wait()
        tail.join()
    stop.set()
    thread.join(timeout=TIMEOUT_S)
    if client is not None:
        status, message = (
            ("idle", "finished") if code == 0 else ("error", tail.said(f"exited with code {code}"))
        )
        try:
            with_retries(lambda: heartbeat(client, name, status, message), attempts=4)
        except ConnectionError as error:
            say(f"could not report the final status: {error}")
    return code


# --- work --------------------------------------------------------------------------------------

USAGE_MARK = "MC_USAGE "
PROGRESS_EVERY_S = 1.0
REPLY_LIMIT = 100_000


def _command_for(template: list[str], prompt: str) -> tuple[list[str], bytes | None]:
    """The command with the brief in place of {prompt}, or the brief for its stdin."""
    if any("{prompt}" in arg for arg in template):
        return [arg.replace("{prompt}", prompt) for arg in template], None
    return list(template), prompt.encode()


class RunOutput:
    """A child's stdout and stderr, read as they come: the reply, the usage lines, the last line
    (what it is doing now) and the end of stderr (why it failed)."""

    def __init__(self) -> None:
        self.out: list[str] = []
        self.err = b""
        self.usage: list[dict[str, Any]] = []
        self.last = ""
        self.lock = threading.Lock()
        self.threads: list[threading.Thread] = []

    def _line(self, line: str, stdout: bool) -> None:
        text = line.rstrip("\n")
        if text.startswith(USAGE_MARK):
            with contextlib.suppress(ValueError):
                record = json.loads(text[len(USAGE_MARK) :])
                if isinstance(record, dict):
                    with self.lock:
                        self.usage.append(record)
            return
        with self.lock:
            if stdout:
                self.out.append(line)
            if text.strip():
                self.last = text.strip()[:500]

    def follow(self, child: subprocess.Popen[bytes]) -> None:
        def pump(stream: Any, stdout: bool) -> None:
            for raw in iter(stream.readline, b""):
                if not stdout:
                    sys.stderr.buffer.write(raw)
                    sys.stderr.flush()
                    self.err = (self.err + raw)[-4096:]
                self._line(raw.decode("utf-8", "replace"), stdout)

        for stream, is_out in ((child.stdout, True), (child.stderr, False)):
            thread = threading.Thread(target=pump, args=(stream, is_out), daemon=True)
            thread.start()
            self.threads.append(thread)

    def join(self) -> None:
        for thread in self.threads:
            thread.join(timeout=TIMEOUT_S)

    def reply(self) -> str:
        return "".join(self.out).strip()[-REPLY_LIMIT:]

    def take_usage(self) -> list[dict[str, Any]]:
        with self.lock:
            taken, self.usage = self.usage, []
        return taken

    def why(self, code: int) -> str:
        tail = self.err.decode("utf-8", "replace").strip()
        lines = " | ".join(line.strip() for line in tail.splitlines() if line.strip())
        return (f"exited with code {code}: {lines}" if lines else f"exited with code {code}")[
            -1000:
        ]


def _quiet(call: Any) -> Any:
    """A report that may fail without stopping the work (the next one tries again)."""
    try:
        return call()
    except (ApiError, OSError, urllib.error.URLError) as error:
        say(f"report failed ({error})")
        return None


def _report_usage(client: Client, run: dict[str, Any], output: RunOutput) -> None:
    records = []
    for n, raw in enumerate(output.take_usage()):
        record = {k: raw[k] for k in raw if k != "task_id"}
        record["task_id"] = run["task_id"]
        record.setdefault("id", f"run-{run['id']}-{time.time_ns()}-{n}")
        records.append(record)
    if records:
        _quiet(lambda: client.post("/api/v1/usage", {"records": records}))


def work_one(
    client: Client, name: str, run: dict[str, Any], template: list[str], interval: int
) -> str:
    """Claim `run`, run the command on it and end it: "succeeded", "failed", "aborted" or
    "released" (Ctrl-C), or "taken" when it was no longer there to claim."""
    try:
        claimed = client.post(f"/api/v1/runs/{run['id']}/claim", {})["run"]
    except ApiError as refused:
        if refused.status == 409:
            return "taken"
        raise
    run_path = f"/api/v1/runs/{claimed['id']}"
    say(f"run {claimed['id']}: task #{claimed['task_id']} (attempt {claimed['attempt']})")
    command, stdin = _command_for(template, claimed["prompt"])
    try:
        child = subprocess.Popen(
            command,
            stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
    except FileNotFoundError:
        failed = {"outcome": "failed", "error": f"command not found: {command[0]}"}
        _quiet(lambda: client.post(f"{run_path}/finish", failed))
        return "failed"
    if stdin is not None and child.stdin is not None:
        with contextlib.suppress(BrokenPipeError):
            child.stdin.write(stdin)
        child.stdin.close()
    output = RunOutput()
    output.follow(child)
    interrupted = [False]

    def interrupt(_sig: int, _frame: Any) -> None:
        interrupted[0] = True
        child.terminate()

    previous = signal.signal(signal.SIGINT, interrupt)
    aborted = False
    said, last_beat, last_said = "", time.monotonic(), 0.0
    try:
        while child.poll() is None:
            time.sleep(0.2)
            now = time.monotonic()
            if now - last_beat >= interval:
                last_beat = now
                answer = _quiet(lambda: heartbeat(client, name, "busy", f"run {claimed['id']}"))
                if answer and claimed["id"] in (answer.get("work") or {}).get("stop", []):
                    say(f"run {claimed['id']} was aborted: stopping the command")
                    aborted = True
                    child.terminate()
            if output.last != said and now - last_said >= PROGRESS_EVERY_S:
                said, last_said = output.last, now
                try:
                    client.post(f"{run_path}/progress", {"text": said})
                except ApiError as refused:
                    if refused.status == 409:  # an operator ended it
                        aborted = True
                        child.terminate()
                except (OSError, urllib.error.URLError):
                    pass
        code = child.wait()
    finally:
        signal.signal(signal.SIGINT, previous)
    output.join()
    _report_usage(client, claimed, output)
    if interrupted[0]:
        _quiet(lambda: client.post(f"{run_path}/release", {}))
        say(f"run {claimed['id']} given back")
        return "released"
    if aborted:
        return "aborted"
    body: dict[str, Any] = (
        {"outcome": "succeeded", "reply": output.reply()}
        if code == 0
        else {"outcome": "failed", "error": output.why(code)}
    )
    with_retries(lambda: client.post(f"{run_path}/finish", body), attempts=5)
    say(f"run {claimed['id']}: {body['outcome']}")
    return str(body["outcome"])


def cmd_work(args: argparse.Namespace) -> int:
    template = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not template:
        raise SystemExit(
            "mc-agent work: give the command after --, e.g. "
            "mc-agent work --name codex-1 -- codex exec {prompt}"
        )
    name = agent_name(args)
    client = connect(name)
    say(f"{name} waiting for runs (Ctrl-C to stop)")
    interval = 30
    try:
        while True:
            try:
                answer = heartbeat(client, name, "idle", "waiting for work")
            except (ApiError, OSError, urllib.error.URLError) as error:
                say(f"heartbeat failed ({error}); retrying")
                time.sleep(args.poll)
                continue
            interval = max(1, int(answer.get("next_heartbeat_s") or interval))
            offered = (answer.get("work") or {}).get("runs", [])
            queued = [r for r in offered if r.get("state") == "queued"]
            if answer.get("paused") or not queued:
                if args.once:
                    return 0
                time.sleep(args.poll)
                continue
            ended = work_one(client, name, queued[0], template, interval)
            if ended == "released":
                return 130
            if args.once and ended != "taken":
                return 0 if ended == "succeeded" else 1
    except KeyboardInterrupt:
        say("stopped")
        return 130


class StderrTail:
    """The child's stderr, passed through to ours as it comes, its last lines kept: a failed
    run's heartbeat says why it failed, not only its exit code."""

    KEEP = 4096

    def __init__(self) -> None:
        self.kept = b""
        self.thread: threading.Thread | None = None

    def follow(self, child: subprocess.Popen[bytes]) -> None:
        def pump() -> None:
            assert child.stderr is not None
            source, out = child.stderr.fileno(), sys.stderr.buffer
            for chunk in iter(lambda: os.read(source, 8192), b""):
                out.write(chunk)
                out.flush()
                self.kept = (self.kept + chunk)[-self.KEEP :]

        self.thread = threading.Thread(target=pump, daemon=True)
        self.thread.start()

    def join(self) -> None:
        if self.thread is not None:
            self.thread.join(timeout=TIMEOUT_S)

    def said(self, prefix: str, limit: int = 500) -> str:
        """`prefix`, then the last lines of stderr, within the heartbeat's message limit."""
        text = self.kept.decode("utf-8", "replace").strip()
        if not text:
            return prefix
        room = limit - len(prefix) - 2
        lines = " | ".join(line.strip() for line in text.splitlines() if line.strip())
        return f"{prefix}: {lines[-room:]}" if room > 0 else prefix[:limit]


# --- heartbeat / report --------------------------------------------------------------------------


def cmd_heartbeat(args: argparse.Namespace) -> int:
    name = agent_name(args)
    answer = with_retries(lambda: heartbeat(connect(name), name, args.status, args.message))
    tasks = answer.get("work", {}).get("tasks", [])
    shown: dict[str, Any] = {"status": answer["agent"]["status"], "tasks": tasks}
    if answer.get("paused"):
        shown["paused"] = True
        shown["reason"] = (answer.get("pause") or {}).get("reason", "")
    print(json.dumps(shown))
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    name = agent_name(args)
    record: dict[str, Any] = {
        "model": args.model,
        "input_tokens": args.input,
        "output_tokens": args.output,
    }
    for flag, field in (
        ("cache_read", "cache_read_tokens"),
        ("cache_write", "cache_write_tokens"),
        ("reasoning", "reasoning_tokens"),
    ):
        if getattr(args, flag):
            record[field] = getattr(args, flag)
    if args.id:
        record["id"] = args.id
    client = connect(name)
    answer = with_retries(lambda: client.post("/api/v1/usage", {"records": [record]}))
    print(json.dumps(answer))
    return 0


# --- Claude Code hook ----------------------------------------------------------------------------


def transcript_usage(path: Path, session: str) -> list[dict[str, Any]]:
    """One usage record per assistant message, keyed by the message id (repeats collapse)."""
    records: dict[str, dict[str, Any]] = {}
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            message = entry.get("message") if isinstance(entry, dict) else None
            if entry.get("type") != "assistant" or not isinstance(message, dict):
                continue
            usage = message.get("usage")
            msg_id = message.get("id") or entry.get("uuid")
            if not isinstance(usage, dict) or not msg_id or not message.get("model"):
                continue
            records[msg_id] = {
                "id": str(msg_id)[:128],
                "model": str(message["model"])[:128],
                "provider": "anthropic",
                "input_tokens": int(usage.get("input_tokens") or 0),
                "output_tokens": int(usage.get("output_tokens") or 0),
                "cache_write_tokens": int(usage.get("cache_creation_input_tokens") or 0),
                "cache_read_tokens": int(usage.get("cache_read_input_tokens") or 0),
                "session": session[:128],
                **(
                    {"occurred_at": entry["timestamp"]}
                    if isinstance(entry.get("timestamp"), str)
                    else {}
                ),
            }
    return list(records.values())


def cmd_claude_hook(args: argparse.Namespace) -> int:
    try:
        hook = json.load(sys.stdin)
        path = Path(hook["transcript_path"]).expanduser()
    except (ValueError, KeyError, TypeError):
        say("expected Claude Code's hook JSON on stdin (with transcript_path)")
        return 0  # never break the user's Claude Code session
    name = (
        args.name
        or os.environ.get("MC_AGENT_NAME")
        or f"claude-code-{socket.gethostname().split('.')[0]}"
    )
    if not path.exists():
        say(f"transcript not found: {path}")
        return 0
    records = transcript_usage(path, str(hook.get("session_id", "")))
    try:
        client = connect(name)
        recorded = duplicates = 0
        for start in range(0, len(records), USAGE_CHUNK):
            chunk = records[start : start + USAGE_CHUNK]
            answer = with_retries(
                lambda chunk=chunk: client.post("/api/v1/usage", {"records": chunk}), attempts=3
            )
            recorded += answer.get("recorded", 0)
            duplicates += answer.get("duplicates", 0)
        status = "idle" if hook.get("hook_event_name") in ("Stop", "SubagentStop") else "busy"
        with_retries(
            lambda: heartbeat(
                client,
                name,
                status,
                f"{hook.get('hook_event_name', 'hook')}: session {str(hook.get('session_id', ''))[:12]}",
            ),
            attempts=3,
        )
    except (ConnectionError, SystemExit) as error:
        say(f"could not report usage: {error}")
        return 0
    say(f"reported {recorded} new usage records ({duplicates} already known)")
    return 0


# --- mcp: stdio <-> Mission Control's MCP endpoint ------------------------------------------------

MCP_TIMEOUT_S = 600  # a tool may wait (an approval's answer): the request stays open that long
# The current revision's per-request envelope names its version here; its HTTP transport wants
# it, the method and the tool's (or resource's) name mirrored in headers.
VERSION_META = "io.modelcontextprotocol/protocolVersion"
NAMED = {"tools/call": "name", "prompts/get": "name", "resources/read": "uri"}


def _header_value(value: str) -> str:
    """As the MCP spec encodes a header value: verbatim when plain ASCII, else base64-wrapped."""
    import base64
    import re

    plain = re.fullmatch(r"[\x21-\x7e]([\x20-\x7e]*[\x21-\x7e])?", value)
    if plain and not value.startswith("=?base64?"):
        return value
    return f"=?base64?{base64.b64encode(value.encode()).decode()}?="


class McpBridge:
    """Each JSON-RPC message read from stdin is POSTed to the endpoint (in a thread of its own:
    one slow tool does not hold up the others); what comes back — a JSON answer, or the events
    of an SSE answer — is written to stdout, one message per line. A refusal of the HTTP request
    itself (no key, rate limit, server down) becomes the JSON-RPC error of that request."""

    def __init__(self, url: str, credential: str) -> None:
        if not url.startswith(("http://", "https://")):
            raise SystemExit(f"mc-agent: MC_URL must start with http:// or https://, not {url!r}")
        self.endpoint = url.rstrip("/") + "/mcp/"
        self.credential = credential
        self.version = ""  # negotiated by `initialize`
        self.session = ""
        self.out = threading.Lock()

    def write(self, message: Any) -> None:
        line = json.dumps(message, separators=(",", ":"))
        with self.out:
            sys.stdout.write(line + "\n")
            sys.stdout.flush()

    def headers(self, message: Any) -> dict[str, str]:
        headers = {
            "Authorization": f"Bearer {self.credential}",
            "Content-Type": "application/json",
            "Accept": "application/json, text/event-stream",
            "User-Agent": "mc-agent-mcp",
        }
        params = message.get("params") if isinstance(message, dict) else None
        meta = params.get("_meta") if isinstance(params, dict) else None
        version = meta.get(VERSION_META) if isinstance(meta, dict) else None
        if isinstance(version, str):
            headers["MCP-Protocol-Version"] = version
            headers["Mcp-Method"] = str(message.get("method", ""))
            name = params.get(NAMED.get(str(message.get("method")), ""))  # type: ignore[union-attr]
            if isinstance(name, str):
                headers["Mcp-Name"] = _header_value(name)
        elif self.version and not (
            isinstance(message, dict) and message.get("method") == "initialize"
        ):
            headers["MCP-Protocol-Version"] = self.version
        if self.session:
            headers["Mcp-Session-Id"] = self.session
        return headers

    def failed(self, message: Any, status: int, detail: str) -> None:
        if isinstance(message, dict) and "id" in message and "method" in message:
            code = -32001 if status in (401, 403) else -32603
            self.write(
                {"jsonrpc": "2.0", "id": message["id"], "error": {"code": code, "message": detail}}
            )
        else:
            say(f"mcp: {detail}")

    def forward(self, message: Any) -> None:
        request = urllib.request.Request(  # noqa: S310 - http(s) only, checked in __init__
            self.endpoint,
            data=json.dumps(message).encode(),
            method="POST",
            headers=self.headers(message),
        )
        try:
            with urllib.request.urlopen(request, timeout=MCP_TIMEOUT_S) as response:  # noqa: S310
                self.session = response.headers.get("Mcp-Session-Id") or self.session
                kind = response.headers.get("Content-Type", "")
                if kind.startswith("text/event-stream"):
                    data: list[str] = []
                    for raw in response:
                        line = raw.decode().rstrip("\r\n")
                        if line.startswith("data:"):
                            data.append(line[5:].lstrip())
                        elif not line and data:
                            self.answer("\n".join(data))
                            data = []
                    if data:
                        self.answer("\n".join(data))
                else:
                    body = response.read()
                    if body.strip():
                        self.answer(body.decode())
        except urllib.error.HTTPError as error:
            body = error.read()
            try:
                payload = json.loads(body or b"{}")
            except ValueError:
                payload = {}
            if isinstance(payload, dict) and payload.get("jsonrpc"):
                self.write(payload)  # the SDK's own JSON-RPC error
                return
            detail = payload.get("detail") if isinstance(payload, dict) else None
            self.failed(message, error.code, f"HTTP {error.code}: {detail or error.reason}")
        except (urllib.error.URLError, OSError) as error:
            self.failed(
                message, 503, f"Mission Control at {self.endpoint} was not reached: {error}"
            )

    def answer(self, text: str) -> None:
        try:
            message = json.loads(text)
        except ValueError:
            say("mcp: the server sent something that is not JSON")
            return
        result = message.get("result") if isinstance(message, dict) else None
        if isinstance(result, dict) and isinstance(result.get("protocolVersion"), str):
            self.version = result["protocolVersion"]
        self.write(message)

    def serve(self) -> int:
        workers: list[threading.Thread] = []
        for line in sys.stdin:
            if not line.strip():
                continue
            try:
                message = json.loads(line)
            except ValueError:
                self.write(
                    {
                        "jsonrpc": "2.0",
                        "id": None,
                        "error": {"code": -32700, "message": "Parse error"},
                    }
                )
                continue
            if isinstance(message, dict) and message.get("method") == "initialize":
                self.forward(message)  # first, alone: what follows needs its version
                continue
            worker = threading.Thread(target=self.forward, args=(message,), daemon=True)
            worker.start()
            workers = [w for w in workers if w.is_alive()] + [worker]
        for worker in workers:
            worker.join(timeout=MCP_TIMEOUT_S)
        return 0


def cmd_mcp(args: argparse.Namespace) -> int:
    url = os.environ.get("MC_URL", "http://127.0.0.1:3200")
    raw = os.environ.get("MC_API_KEY", "")
    # A person's token gives the operators' tools; otherwise the agent's own key.
    credential = raw if raw.startswith("mct_") else connect(agent_name(args)).key
    return McpBridge(url, credential).serve()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="mc-agent", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="cmd", required=True)
    run = sub.add_parser(
        "run", help="run a command, reporting busy while it runs and idle/error after"
    )
    run.add_argument("--name")
    run.add_argument(
        "--interval", type=int, default=30, help="seconds between heartbeats (default 30)"
    )
    run.add_argument("command", nargs=argparse.REMAINDER)
    work = sub.add_parser(
        "work", help="a worker: run COMMAND on each run dispatched to the agent, one at a time"
    )
    work.add_argument("--name")
    work.add_argument(
        "--poll", type=float, default=5, help="seconds between looks for work (default 5)"
    )
    work.add_argument("--once", action="store_true", help="one run (or none waiting), then exit")
    work.add_argument("command", nargs=argparse.REMAINDER)
    hb = sub.add_parser("heartbeat", help="send one heartbeat; prints the agent's tasks")
    hb.add_argument("--name")
    hb.add_argument("--status", choices=["idle", "busy", "error"], default="idle")
    hb.add_argument("--message")
    rep = sub.add_parser("report", help="report the token usage of one model call")
    rep.add_argument("--name")
    rep.add_argument("--model", required=True)
    rep.add_argument("--input", type=int, required=True)
    rep.add_argument("--output", type=int, required=True)
    rep.add_argument("--cache-read", dest="cache_read", type=int, default=0)
    rep.add_argument("--cache-write", dest="cache_write", type=int, default=0)
    rep.add_argument("--reasoning", type=int, default=0)
    rep.add_argument("--id", help="idempotency key: the same id is counted once")
    hook = sub.add_parser(
        "claude-hook", help="for Claude Code's Stop/SubagentStop hooks (JSON on stdin)"
    )
    hook.add_argument("--name")
    mcp = sub.add_parser(
        "mcp", help="Mission Control's MCP server over stdio (for clients that launch commands)"
    )
    mcp.add_argument("--name")
    args = parser.parse_args(argv)
    handlers = {
        "run": cmd_run,
        "work": cmd_work,
        "heartbeat": cmd_heartbeat,
        "report": cmd_report,
        "claude-hook": cmd_claude_hook,
        "mcp": cmd_mcp,
    }
    return handlers[args.cmd](args)
