"""A real ``dagster dev`` on loopback for the tests that talk to it (GraphQL, a browser): one
harness, so starting it, waiting for the asset graph and stopping its process group are
written once. Nothing is mocked: the webserver and the code location really run."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

REPO = Path(__file__).resolve().parents[1]
DAGSTER = str(Path(sys.executable).with_name("dagster"))
T = TypeVar("T")


def free_port() -> int:
    """A loopback port nothing listens on now (so parallel runs do not collide)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(predicate: Callable[[], T], timeout: float, step: float = 2.0, what: str = "condition") -> T:
    """The first truthy value of ``predicate``, polled every ``step`` seconds; an exception
    counts as not yet (the server is still starting or loading the code location)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            value = predicate()
            if value:
                return value
        except Exception:
            pass
        time.sleep(step)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


@dataclass(frozen=True)
class DagsterDev:
    """A running ``dagster dev``: its port, the test's folder and the server's log."""

    port: int
    root: Path
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def graphql(self, query: str, timeout: float = 20) -> dict[str, Any]:
        """The ``data`` of one GraphQL query against the webserver."""
        request = urllib.request.Request(
            f"{self.url}/graphql",
            data=json.dumps({"query": query}).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return json.loads(response.read())["data"]


@contextmanager
def dagster_dev(
    root: Path,
    env: Mapping[str, str] | None = None,
    timeout: float = 240,
    target: Sequence[str] = ("-w", "workspace.yaml"),
    cwd: Path = REPO,
) -> Iterator[DagsterDev]:
    """``dagster dev`` on ``target`` (the repository's workspace) run in ``cwd``, with a fresh
    ``DAGSTER_HOME`` (configured as ``make`` configures it, from ``dagster-instance.yaml``) and
    storage under ``root`` (plus ``env``), yielded once it serves the asset graph; its whole
    process group is stopped afterwards, so no webserver or code server outlives the test."""
    home = root / "home"
    home.mkdir()
    (home / "dagster.yaml").write_text((REPO / "dagster-instance.yaml").read_text())
    server = DagsterDev(free_port(), root, root / "dagster-dev.log")
    environment = {**os.environ, "DAGSTER_HOME": str(home), "CAUSALREC_STORAGE": str(root / "storage"), **(env or {})}
    with open(server.log, "w") as log:
        proc = subprocess.Popen(
            [DAGSTER, "dev", *target, "-h", "127.0.0.1", "-p", str(server.port)],
            cwd=cwd, env=environment, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        try:
            wait_for(lambda: server.graphql("{ assetNodes { id } }")["assetNodes"], timeout, what="dagster dev")
            yield server
        finally:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
