"""Behind a real TLS proxy — nginx and Caddy from the OS packages, with the configurations of
docs/deploy/ exactly as the README shows them (only the name, ports and a self-signed test
certificate changed) — in front of a real `serve` on the test database.

Set up as the README says, everything works (sign-in with CSRF, live updates over `wss://`,
Secure and HttpOnly cookies, HSTS, agent heartbeats, forged forwarded headers from clients
ignored, the real client address in the audit trail). Each common mistake is named, with its
fix, on the admins' Deployment page: a proxy that drops the WebSocket upgrade, `MC_TLS` off
behind TLS, the proxy not in `MC_TRUSTED_PROXIES`.

The browser reaches `mc.example.test` through Chromium's host-resolver rule; httpx through the
SNI/Host of the request; the client address 127.0.0.2 (the proxy is 127.0.0.1) so that the
trusted-proxy rules are exercised as across a network.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import shutil
import signal
import ssl
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from agents.models import Agent, AgentKey
from missioncontrol.models import AuditEvent, DeploymentFinding
from tests.agents.conftest import issue
from tests.conftest import CHROMIUM_ARGS, CSP_RECORDER, LIVE_SERVER_ENV
from tests.live import PASSWORD, ROOT, ServerProcess, free_port, once
from tests.missioncontrol.factories import UserFactory
from tests.tasks.factories import make_task

NAME = "mc.example.test"
pytestmark = [
    pytest.mark.slow,
    pytest.mark.browser,
    # What the proxy and the browser see does not depend on the database: once, on SQLite.
    once("sqlite", "what the proxy and the browser see"),
    pytest.mark.skipif(
        not (shutil.which("nginx") and shutil.which("caddy")),
        reason="needs nginx and caddy (./mc test installs them: apt-get install nginx-light caddy)",
    ),
]


@pytest.fixture(scope="module")
def certificate() -> Iterator[tuple[Path, Path]]:
    """A self-signed certificate for mc.example.test (its own CA)."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, NAME)])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(NAME)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    folder = Path(tempfile.mkdtemp(prefix="mc-tls-"))
    os.chmod(folder, 0o755)
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    yield cert_path, key_path
    shutil.rmtree(folder, ignore_errors=True)


class Proxy:
    """nginx or Caddy, configured from docs/deploy/, on a free port; stopped by PID."""

    def __init__(
        self,
        kind: str,
        port: int,
        upstream: int,
        cert: tuple[Path, Path],
        *,
        websocket_upgrade: bool = True,
    ) -> None:
        self.kind, self.port = kind, port
        self.dir = Path(tempfile.mkdtemp(prefix=f"mc-{kind}-"))
        os.chmod(self.dir, 0o777)
        cert_path, key_path = cert
        if kind == "nginx":
            site = (ROOT / "docs/deploy/nginx.conf").read_text()
            site = site.replace("listen 443 ssl http2;", f"listen 127.0.0.1:{self.port} ssl http2;")
            site = site.replace("mc.example.com", NAME)
            site = site.replace(f"/etc/ssl/certs/{NAME}.pem", str(cert_path))
            site = site.replace(f"/etc/ssl/private/{NAME}.key", str(key_path))
            site = site.replace("127.0.0.1:3200", f"127.0.0.1:{upstream}")
            if not websocket_upgrade:  # the mistake: a proxy that does not pass the upgrade on
                site = re.sub(r"\n\s*proxy_set_header (Upgrade|Connection) [^\n]*", "", site)
            temp = self.dir / "tmp"
            temp.mkdir()
            os.chmod(temp, 0o777)
            main = f"""
                {"user root;" if os.geteuid() == 0 else ""}
                daemon off;
                worker_processes 1;
                pid {self.dir}/nginx.pid;
                error_log {self.dir}/error.log warn;
                events {{ worker_connections 256; }}
                http {{
                    access_log off;
                    client_body_temp_path {temp}/body;
                    proxy_temp_path {temp}/proxy;
                    fastcgi_temp_path {temp}/fastcgi;
                    uwsgi_temp_path {temp}/uwsgi;
                    scgi_temp_path {temp}/scgi;
                    {site}
                }}
            """
            (self.dir / "nginx.conf").write_text(main)
            command = ["nginx", "-p", str(self.dir), "-c", str(self.dir / "nginx.conf")]
        else:
            site = (ROOT / "docs/deploy/Caddyfile").read_text()
            site = site.replace("mc.example.com {", f"https://{NAME}:{self.port} {{")
            site = site.replace(
                "\treverse_proxy 127.0.0.1:3200",
                f"\ttls {cert_path} {key_path}\n\treverse_proxy 127.0.0.1:{upstream}",
            )
            site = (
                "{\n\tadmin off\n\tauto_https disable_redirects\n\tskip_install_trust\n}\n" + site
            )
            (self.dir / "Caddyfile").write_text(site)
            command = ["caddy", "run", "--config", str(self.dir / "Caddyfile")]
        env = {**os.environ, "HOME": str(self.dir), "XDG_DATA_HOME": str(self.dir)}
        self.log = (self.dir / "out.log").open("wb")
        self.process = subprocess.Popen(
            command, stdout=self.log, stderr=subprocess.STDOUT, env=env, cwd=self.dir
        )
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{kind} exited: {self.output()}")
            try:
                with httpx.Client(verify=False, timeout=1) as probe:
                    probe.get(
                        f"https://127.0.0.1:{self.port}/healthz",
                        headers={"Host": NAME},
                        extensions={"sni_hostname": NAME},
                    )
                return
            except httpx.HTTPError:
                time.sleep(0.05)
        raise RuntimeError(f"{kind} did not listen: {self.output()}")

    @property
    def url(self) -> str:
        return f"https://{NAME}:{self.port}"

    def output(self) -> str:
        text = (self.dir / "out.log").read_text(errors="replace")
        error_log = self.dir / "error.log"
        return text + (error_log.read_text(errors="replace") if error_log.exists() else "")

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM if self.kind == "caddy" else signal.SIGQUIT)
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)


def env_for(proxy_port: int, **changes: str) -> dict[str, str]:
    """The README's settings for this proxy; `changes` make the mistakes."""
    env = {
        **LIVE_SERVER_ENV,
        # 127.0.0.1: the health checks (and this suite's readiness probe) come straight in.
        "MC_ALLOWED_HOSTS": f"{NAME},127.0.0.1",
        "MC_CSRF_TRUSTED_ORIGINS": f"https://{NAME}:{proxy_port}",
        "MC_TRUSTED_PROXIES": "127.0.0.1",
        "MC_TLS": "1",
    }
    env.update(changes)
    return {k: v for k, v in env.items() if v != "-"}


@pytest.fixture
def stack(test_db_path: str, static_built: None, certificate: Any, transactional_db: None) -> Any:
    """Start serve + a proxy (kind, websocket_upgrade, settings changes); stopped after."""
    running: list[Any] = []

    def start(kind: str, websocket_upgrade: bool = True, **changes: str) -> Proxy:
        proxy_port = free_port()  # the origin names it before the proxy starts
        server = ServerProcess(test_db_path, extra_env=env_for(proxy_port, **changes)).start()
        running.append(server)
        proxy = Proxy(
            kind, proxy_port, server.port, certificate, websocket_upgrade=websocket_upgrade
        )
        running.append(proxy)
        return proxy

    yield start
    for item in reversed(running):
        item.stop()


def client(proxy: Proxy, cert: tuple[Path, Path]) -> httpx.Client:
    """An HTTPS client from 127.0.0.2 to the proxy, verifying its certificate for NAME."""
    context = ssl.create_default_context(cafile=str(cert[0]))
    transport = httpx.HTTPTransport(verify=context, local_address="127.0.0.2")
    return httpx.Client(
        base_url=f"https://127.0.0.1:{proxy.port}",
        transport=transport,
        headers={"Host": f"{NAME}:{proxy.port}"},
        timeout=10,
    )


def get(http: httpx.Client, path: str, **kwargs: Any) -> httpx.Response:
    return http.get(path, extensions={"sni_hostname": NAME}, **kwargs)


def post(http: httpx.Client, path: str, **kwargs: Any) -> httpx.Response:
    return http.post(path, extensions={"sni_hostname": NAME}, **kwargs)


def sign_in(http: httpx.Client, proxy: Proxy, username: str) -> httpx.Response:
    page = get(http, "/login/")
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text)
    assert token is not None
    return post(
        http,
        "/login/",
        data={"username": username, "password": PASSWORD, "csrfmiddlewaretoken": token.group(1)},
        headers={"Origin": proxy.url, "Referer": f"{proxy.url}/login/"},
    )


def open_browser(playwright: Any, proxy: Proxy) -> Any:
    executable = os.environ.get("MC_CHROMIUM") or "/usr/bin/chromium"
    browser = playwright.chromium.launch(
        headless=True,
        executable_path=executable if os.path.exists(executable) else None,
        args=[*CHROMIUM_ARGS, f"--host-resolver-rules=MAP {NAME} 127.0.0.1"],
    )
    context = browser.new_context(base_url=proxy.url, ignore_https_errors=True)
    context.add_init_script(CSP_RECORDER)
    return browser, context


def browser_sign_in(page: Any, username: str) -> None:
    page.goto("/login/")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url("**/")


@pytest.mark.parametrize("kind", ["nginx", "caddy"])
def test_as_the_readme_says_everything_works_through_the_proxy(
    stack, certificate, kind, monkeypatch
):
    from playwright.sync_api import sync_playwright

    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    UserFactory.create(username="olga", role="operator")
    proxy = stack(kind)

    # Sign-in (CSRF with the proxy's origin) from 127.0.0.2, a forged X-Forwarded-For ignored.
    with client(proxy, certificate) as http:
        http.headers["X-Forwarded-For"] = "203.0.113.66"
        signed = sign_in(http, proxy, "olga")
        assert signed.status_code == 302, signed.text[:300]
        cookies = signed.headers.get_list("set-cookie")
        session = next(c for c in cookies if c.startswith("sessionid="))
        assert "Secure" in session
        assert "HttpOnly" in session
        assert "SameSite=Lax" in session
        page = get(http, "/board/")
        assert page.status_code == 200
        assert page.headers["strict-transport-security"] == "max-age=31536000"
    entry = AuditEvent.objects.filter(verb="signed_in", object_repr="olga").latest("pk")
    assert entry.changes["after"]["address"] == "127.0.0.2"  # not the forged one

    # An agent's heartbeat (the fast path) through the proxy, with HSTS too.
    agent = Agent.objects.create(name=f"proxied-{kind}")
    key = issue(AgentKey.Kind.AGENT, agent)[1]
    with client(proxy, certificate) as http:
        beat = post(
            http,
            f"/api/v1/agents/{agent.name}/heartbeat",
            json={"status": "idle"},
            headers={"Authorization": f"Bearer {key}"},
        )
        assert beat.status_code == 200, beat.text
        assert beat.headers["strict-transport-security"] == "max-age=31536000"

    # A browser: live over wss:// through the proxy; a task made elsewhere arrives live.
    with sync_playwright() as playwright:
        browser, context = open_browser(playwright, proxy)
        page = context.new_page()
        browser_sign_in(page, "olga")
        page.goto("/board/")
        page.wait_for_selector("#live-status[data-state=live]", timeout=8000)
        assert page.evaluate("window.mcLive.state.mode") == "ws"
        assert page.inner_text("#live-status .live-label") == "Live"
        # Another tab of the same operator adds a task through the proxy (a form POST: CSRF
        # with the proxy's origin); the board shows it live.
        other = context.new_page()
        other.goto("/tasks/new/")
        other.fill("input[name=title]", "Through the proxy")
        other.select_option("select[name=status]", "todo")
        other.click("#new-task-form button[type=submit]")
        page.wait_for_selector("#col-todo-list .card-title:has-text('Through the proxy')")
        assert page.evaluate("window.__csp || []") == []
        browser.close()
    assert list(DeploymentFinding.objects.values_list("code", flat=True)) == []


def test_a_proxy_that_drops_the_upgrade_is_named_and_pages_stay_live(stack, monkeypatch):
    from playwright.sync_api import sync_playwright

    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    UserFactory.create(username="pia", role="viewer")
    proxy = stack("nginx", websocket_upgrade=False)
    with sync_playwright() as playwright:
        browser, context = open_browser(playwright, proxy)
        page = context.new_page()
        browser_sign_in(page, "pia")
        page.goto("/board/")
        page.wait_for_selector("#live-status[data-state=live]", timeout=15000)
        assert page.inner_text("#live-status .live-label") == "Live (SSE)"
        make_task("Over SSE through nginx")  # written by this process: seen on reconnect
        page.reload()
        page.wait_for_selector("#live-status[data-state=live]", timeout=5000)
        assert page.inner_text("#live-status .live-label") == "Live (SSE)"  # remembered
        page.wait_for_selector("#col-todo-list .card-title:has-text('Over SSE through nginx')")
        browser.close()
    found = DeploymentFinding.objects.get(code="websocket")
    assert NAME in found.detail
    assert "proxy_set_header Upgrade" in found.remedy


@pytest.mark.parametrize(
    ("mistake", "code", "says"),
    [
        ({"MC_TLS": "-"}, "tls_off", "Set MC_TLS=1"),
        ({"MC_TRUSTED_PROXIES": "-"}, "untrusted_proxy", "MC_TRUSTED_PROXIES=127.0.0.1"),
    ],
)
def test_each_settings_mistake_is_named_with_its_fix(stack, certificate, mistake, code, says):
    UserFactory.create(username="quin", role="viewer")
    proxy = stack("nginx", **mistake)
    with client(proxy, certificate) as http:
        assert get(http, "/login/").status_code == 200
    found = DeploymentFinding.objects.get(code=code)
    assert says in found.remedy


def test_the_readme_shows_the_tested_configurations():
    readme = (ROOT / "README.md").read_text()
    for name in ("nginx.conf", "Caddyfile"):
        text = (ROOT / "docs/deploy" / name).read_text().strip()
        assert text in readme, f"README's {name} differs from docs/deploy/{name}"


def test_a_name_not_allowed_gets_a_plain_page_and_the_admin_the_fix(stack, certificate):
    proxy = stack("nginx", MC_ALLOWED_HOSTS="127.0.0.1")  # the mistake: the public name missing
    with client(proxy, certificate) as http:
        refused = get(http, "/login/")
    assert refused.status_code == 400
    assert "MC_ALLOWED_HOSTS" not in refused.text  # strangers learn nothing of the settings
    assert 'rel="stylesheet"' in refused.text  # our own page, not a bare <h1>
    # (The proxy's readiness probe, sent without the port, is a finding of its own.)
    found = DeploymentFinding.objects.get(code="host", detail__contains=f"{NAME}:{proxy.port}")
    assert "add it to MC_ALLOWED_HOSTS" in found.remedy


def test_an_origin_without_its_port_is_named_with_the_one_to_write(stack, certificate):
    """The proxy not trusted (so the scheme is not known to be https) and the origin written
    without its port: sign-in is refused with our page, and the finding says what to write."""
    UserFactory.create(username="rui", role="viewer")
    proxy = stack("nginx", MC_TRUSTED_PROXIES="-", MC_CSRF_TRUSTED_ORIGINS=f"https://{NAME}")
    with client(proxy, certificate) as http:
        refused = sign_in(http, proxy, "rui")
    assert refused.status_code == 403
    assert "MC_CSRF_TRUSTED_ORIGINS" not in refused.text
    found = DeploymentFinding.objects.get(code="csrf_origin")
    assert proxy.url in found.detail
    assert "MC_CSRF_TRUSTED_ORIGINS" in found.remedy
