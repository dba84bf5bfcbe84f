"""A small MCP server written with the official package's MCPServer, for tests of kimi-env's MCP client.

Tools: add (two integers), lookup (a capital city), die (the process exits at once), hang (never answers).
"""

import os
import sys
import time

from mcp.server.mcpserver import MCPServer

server = MCPServer("toy")
CAPITALS = {"Vurmark": "Calbaeszein", "Haerania": "Youlushwick"}


@server.tool()
def add(a: int, b: int) -> str:
    """Add two integers."""
    return str(a + b)


@server.tool()
def lookup(country: str) -> str:
    """The capital city of a country of the toy world."""
    if country not in CAPITALS:
        raise ValueError(f"no country named {country!r}")
    return CAPITALS[country]


@server.tool()
def die() -> str:
    """Crash the server process."""
    os._exit(3)


@server.tool()
def hang() -> str:
    """Never return."""
    time.sleep(10_000)
    return "unreachable"


if __name__ == "__main__":
    if "--only-add" in sys.argv:
        for name in ("lookup", "die", "hang"):
            server.remove_tool(name)
    server.run("stdio")
