"""One run at a time per storage folder: a lease file that a second run waits on or is refused by.

Dagster's run queue keeps the runs it launches apart (``run_queue.tag_concurrency_limits`` on
the ``causalrec/storage`` tag; see README). This lease covers every other way a run starts
(``dagster asset materialize``, ``execute_in_process``, a second instance): the first step of a
run takes ``<storage>/.causalrec/lock``, and the run that publishes
gives it back. A lease is dead, and is taken over with a warning, when its run is finished in
the Dagster instance, when the process that orchestrates it is gone (same host: a killed run
frees the storage at once) or, from another host, when its heartbeat is older than
``HEARTBEAT_TTL_S``. Who holds the lease is decided under a ``flock``, so two runs taking over
one dead lease cannot both win.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from causalrec_toolkit.files import atomic_write_text

HEARTBEAT_S = 5.0
HEARTBEAT_TTL_S = 120.0
POLL_S = 1.0


class StorageBusy(RuntimeError):
    """Another live run holds the storage and this one may not wait (any longer)."""


@dataclass(frozen=True)
class Lease:
    run_id: str
    host: str
    pid: int
    acquired_at: float

    def describe(self, heartbeat_age: float | None) -> str:
        since = time.strftime("%H:%M:%S", time.localtime(self.acquired_at))
        beat = f", last heartbeat {heartbeat_age:.0f} s ago" if heartbeat_age is not None else ""
        return f"run {self.run_id} (pid {self.pid} on {self.host}, since {since}{beat})"


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: it exists
        return True
    return True


class StorageLock:
    """The lease on one storage folder. ``run_finished(run_id)`` asks the Dagster instance
    whether a run has ended (True), is still going (False) or is unknown to it (None)."""

    def __init__(self, state_dir: Path, run_finished: Callable[[str], bool | None] | None = None) -> None:
        self.path = Path(state_dir) / "lock"
        self.run_finished = run_finished or (lambda _run: None)

    def holder(self) -> tuple[Lease, float] | None:
        """The lease and its heartbeat age in seconds, or None when the storage is free."""
        try:
            raw = self.path.read_text()
            age = time.time() - self.path.stat().st_mtime
        except FileNotFoundError:
            return None
        try:
            return Lease(**json.loads(raw)), age
        except (json.JSONDecodeError, TypeError):  # half written by a process killed mid-write
            return Lease("?", "?", -1, 0.0), age

    def why_dead(self, lease: Lease, age: float, orchestrator_pid: int) -> str | None:
        """Why ``lease`` no longer protects anything (None: its run is alive)."""
        if lease.run_id == "?":
            return "the lease file is unreadable"
        finished = self.run_finished(lease.run_id)
        if finished:
            return f"run {lease.run_id} has finished"
        if lease.host == socket.gethostname():
            if lease.pid == orchestrator_pid:  # runs of one process execute one after the other
                return f"run {lease.run_id} ended in this process"
            if not pid_alive(lease.pid):
                return f"its process {lease.pid} is gone (killed?)"
            return None
        if age > HEARTBEAT_TTL_S:
            return f"no heartbeat for {age:.0f} s"
        return None

    def acquire(
        self, run_id: str, orchestrator_pid: int, wait_s: float, log: logging.Logger | None = None
    ) -> str | None:
        """Take the lease for ``run_id`` (again, if it holds it already), waiting up to ``wait_s``
        for a live holder. Returns the run whose dead lease was taken over, if any."""
        log = log or logging.getLogger("causalrec.storage")
        mine = Lease(run_id, socket.gethostname(), orchestrator_pid, time.time())
        deadline, told = time.monotonic() + wait_s, 0.0
        while True:
            with self._guard():  # one process at a time decides who holds the lease
                held = self.holder()
                if held is None:
                    self._write(mine)
                    return None
                lease, age = held
                if lease.run_id == run_id:
                    self.path.touch()
                    return None
                dead = self.why_dead(lease, age, orchestrator_pid)
                if dead:
                    log.warning(f"storage lock of {lease.describe(age)} taken over: {dead}")
                    self._write(mine)
                    return lease.run_id
            if time.monotonic() >= deadline:
                raise StorageBusy(
                    f"storage {self.path.parent.parent} is in use by {lease.describe(age)}; run {run_id} "
                    f"waited {wait_s:.0f} s and gives up (one run at a time writes to a storage: start it "
                    "again when that run ends, or raise CAUSALREC_STORAGE_WAIT)"
                )
            if not told or time.monotonic() - told > 30:
                log.info(f"storage {self.path.parent.parent} is in use by {lease.describe(age)}: waiting")
                told = time.monotonic()
            time.sleep(POLL_S)

    def release(self, run_id: str) -> None:
        with self._guard():
            held = self.holder()
            if held and held[0].run_id == run_id:
                self.path.unlink(missing_ok=True)

    def heartbeat(self, run_id: str, stop: threading.Event) -> threading.Thread:
        """Touch the lease every ``HEARTBEAT_S`` while ``run_id`` holds it, until ``stop``."""

        def beat() -> None:
            while not stop.wait(HEARTBEAT_S):
                held = self.holder()
                if not held or held[0].run_id != run_id:
                    return
                self.path.touch()

        thread = threading.Thread(target=beat, name=f"causalrec-lease-{run_id[:8]}", daemon=True)
        thread.start()
        return thread

    @contextmanager
    def _guard(self) -> Iterator[None]:
        """An exclusive ``flock``: the kernel drops it when its process dies, so it cannot go stale."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path.with_name("lock.guard"), "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def _write(self, lease: Lease) -> None:
        """Replace the lease file whole (a reader never sees half of it)."""
        atomic_write_text(self.path, json.dumps(lease.__dict__))
