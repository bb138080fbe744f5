"""``tracejudge server`` as a real process on 127.0.0.1, for tests and benchmarks of the server
(started through the CLI exactly as a user would, on a port the OS picks)."""

from __future__ import annotations

import re
import subprocess
import sys
import threading


class ServerProcess:
    """``tracejudge server --port 0`` as a real process; ``url`` once it listens. With
    ``command="ui"``: ``tracejudge --tracking-uri STORE ui --port 0 --no-open`` instead."""

    def __init__(self, store_uri: str, *extra: str, command: str = "server") -> None:
        self.store_uri = store_uri
        cli = [sys.executable, "-m", "tracejudge.cli.main"]
        if command == "ui":
            args = [*cli, "--tracking-uri", store_uri, "ui", "--port", "0", "--no-open", *extra]
        else:
            args = [*cli, "server", "--port", "0", "--backend-store-uri", store_uri, *extra]
        self.proc = subprocess.Popen(
            args,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        assert self.proc.stdout is not None
        seen = []
        found = None
        for line in self.proc.stdout:  # the address is printed once the socket listens
            seen.append(line)
            found = re.search(r"listening on (http://\S+),", line)
            if found is not None:
                break
        if found is None:
            self.stop()
            raise RuntimeError("the server did not start:\n" + "".join(seen))
        self.url = found.group(1)
        threading.Thread(target=self._drain, daemon=True).start()

    def _drain(self) -> None:
        assert self.proc.stdout is not None
        for _ in self.proc.stdout:  # keep the pipe from filling up
            pass

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait(timeout=60)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.kill()
