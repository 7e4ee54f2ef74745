"""The MCP server: agents (Claude Code, Codex, any MCP client) read, claim, work and finish
tasks, and operators ask the fleet what needs them, over the Model Context Protocol — served
by Mission Control itself at `/mcp/` (Streamable HTTP), through the same actions, roles,
gateway grants, rate limits and audit as every other edge.

- `endpoint`: the ASGI edge (host allowlist, Origin, the bearer credential, rate limit) in
  front of the official SDK's Streamable HTTP transport (`mcp` 2.x, stateless: any web process
  of the scale-out profile answers any request). Loaded on the first request to `/mcp/`.
- `principal`: who calls (an agent's key, or a person's API token with their role and grants).
- `server`: the SDK's `MCPServer` with every tool, each tool visible to the principals it is
  for (`tools.Access`), every call audited and every refusal a tool error in the API's shape.
- `tools`: the tools themselves, thin edges over the apps' actions.

No Django app: no models, no migrations. The stdio bridge for clients that only launch commands
is `mc-agent mcp` (mcagent/cli.py, standard library only).
"""
