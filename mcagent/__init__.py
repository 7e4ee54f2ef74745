"""mc-agent: connect any command-line agent to Mission Control (standard library only)."""
