"""Runs toy_server.py behind a line proxy that replaces every tools/call result with a malformed one (content is
not a list), so the client receives a response that breaks the MCP schema."""

import json
import subprocess
import sys
import threading
from pathlib import Path


def main() -> None:
    child = subprocess.Popen([sys.executable, str(Path(__file__).with_name("toy_server.py"))], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True, bufsize=1)
    calls: set = set()

    def pump_in() -> None:
        for line in sys.stdin:
            try:
                msg = json.loads(line)
                if msg.get("method") == "tools/call":
                    calls.add(msg.get("id"))
            except ValueError:
                pass
            child.stdin.write(line)
            child.stdin.flush()
        child.stdin.close()

    threading.Thread(target=pump_in, daemon=True).start()
    for line in child.stdout:
        try:
            msg = json.loads(line)
            if msg.get("id") in calls and "result" in msg:
                msg["result"] = {"content": 42, "isError": "perhaps"}
                line = json.dumps(msg) + "\n"
        except ValueError:
            pass
        sys.stdout.write(line)
        sys.stdout.flush()


if __name__ == "__main__":  # imported (e.g. by pytest's doctest collection) it does nothing
    main()
