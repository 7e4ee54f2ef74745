from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from gateways import connector
from missioncontrol.supervisor import Supervisor, registered_loops, registered_rows
from tests.gateways.fakellm import FakeModel, provider_config
from tests.gateways.real import RealGateway


@pytest.fixture(scope="session")
def fake_model() -> Iterator[FakeModel]:
    model = FakeModel().start()
    yield model
    model.stop()


@pytest.fixture(scope="session")
def real_gateways(
    tmp_path_factory: pytest.TempPathFactory, fake_model: FakeModel
) -> Iterator[dict[str, RealGateway]]:
    """Two real gateways for the session, each started when a test first needs it (≈20 s of
    CPU and ≈1 GB each; a profile whose tests need only one starts only one). Alpha runs its
    agent on the fake model and trusts 127.0.0.1 as a proxy (connections through
    ForwardingProxy count as remote); beta is provider-less."""
    root: Path = tmp_path_factory.mktemp("openclaw")
    gateways = {
        "alpha": RealGateway(
            root / "alpha",
            "alpha-token-0123456789",
            trusted_proxies=["127.0.0.1"],
            extra_config=provider_config(fake_model.url),
        ),
        "beta": RealGateway(root / "beta", "beta-token-0123456789"),
    }
    try:
        yield gateways
    finally:
        for gateway in gateways.values():
            gateway.stop()


@pytest.fixture(scope="module")
def gateways_here(real_gateways: dict[str, RealGateway]) -> Iterator[dict[str, RealGateway]]:
    """The real gateways for one module's tests, stopped when the module is done: an idle
    gateway still uses a tenth of a core (measured: 3 s of CPU in 30 s), and the modules that
    need one are spread through a randomly ordered run (a start costs ~14 s of CPU)."""
    yield real_gateways
    for gateway in real_gateways.values():
        gateway.stop()


def _running(gateway: RealGateway) -> RealGateway:
    """Started (the first use, or again after a test killed it) and ready."""
    if gateway.proc is None or gateway.proc.poll() is not None:
        gateway.start()
    gateway.wait_ready()
    return gateway


@pytest.fixture
def alpha(gateways_here: dict[str, RealGateway]) -> RealGateway:
    return _running(gateways_here["alpha"])


@pytest.fixture
def beta(gateways_here: dict[str, RealGateway]) -> RealGateway:
    return _running(gateways_here["beta"])


@pytest.fixture
async def running(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Supervisor]:
    """The gateways' row tasks and the command loop, as `serve` runs them."""
    monkeypatch.setattr(connector, "backoff", lambda attempt, since: 0.05)
    loops = [spec for spec in registered_loops() if spec.name == "gateway-commands"]
    rows = [spec for spec in registered_rows() if spec.name == "gateways"]
    supervisor = Supervisor(loops, rows=rows)
    supervisor.start()
    yield supervisor
    await supervisor.stop()
