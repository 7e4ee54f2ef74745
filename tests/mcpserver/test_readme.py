"""The README's MCP section says only what is true: every tool it names exists and is for the
principal it says, the endpoint and the bridge's command are the ones the end-to-end tests use
(test_live.py), and the lease it quotes is the setting's default."""

from __future__ import annotations

import re
import subprocess
import sys

from django.conf import settings

from mcpserver import tools
from mcpserver.endpoint import PREFIX
from tests.live import ROOT


def _section() -> str:
    text = (ROOT / "README.md").read_text()
    start = text.index("## Over MCP")
    return text[start : text.index("\n## ", start + 1)]


def test_every_tool_the_readme_names_exists_for_whom_it_says() -> None:
    section = _section()
    agents = section[section.index("agents' tools") : section.index("operators' tools")]
    people = section[section.index("operators' tools") : section.index("Every\ncall")]
    named = set(re.findall(r"`([a-z_]+)`", agents)) | set(re.findall(r"`([a-z_]+)`", people))
    assert named == set(tools.ACCESS)
    for name in re.findall(r"`([a-z_]+)`", agents):
        assert tools.ACCESS[name] == "agent", name
    for name in re.findall(r"`([a-z_]+)`", people):
        assert tools.ACCESS[name] != "agent", name


def test_the_endpoint_bridge_and_lease_are_as_the_readme_says() -> None:
    section = _section()
    assert f"http://127.0.0.1:3200{PREFIX}/" in section
    assert "mc-agent mcp --name claude-laptop" in section
    assert f"`MC_RUN_LEASE` ({settings.MC_RUN_LEASE_S} s" in section
    shown = subprocess.run(
        [sys.executable, "-m", "mcagent", "mcp", "--help"], cwd=ROOT, capture_output=True, text=True
    )
    assert shown.returncode == 0
    assert "--name" in shown.stdout
