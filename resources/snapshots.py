"""Write-audit-publish over a storage folder: run-scoped staging, one atomic switch to publish.

Layout (everything causalrec keeps for itself lives in ``<storage>/.causalrec/``)::

    <storage>/users.parquet -> .causalrec/current/users.parquet      (one stable link per asset)
    <storage>/.causalrec/current -> runs/<run_id>                     (the published snapshot)
    <storage>/.causalrec/runs/<run_id>/users.parquet ...              (a run's staging area)
    <storage>/.causalrec/runs/<run_id>/_snapshot.json                 (written when it is published)

A run writes only into its own staging folder and reads upstream assets from it, from the
staging of the runs it re-executes, and then from the snapshot that was published when it
started (its *base*). Publishing completes the staging folder with hard links to the base's
files for the assets the run did not produce, writes the manifest, and replaces the
``current`` link with one ``rename(2)``: a reader that opens ``<storage>/users.parquet`` sees
either the old snapshot or the new one, never a mix, and a run that fails or is killed before
that rename changes no published byte. Earlier snapshots stay (hard links cost no space for
unchanged files) and can be published again with :meth:`Snapshots.rollback`.
"""

from __future__ import annotations

import json
import os
import shutil
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from causalrec_toolkit.files import atomic_write_text

STATE_DIR = ".causalrec"
MANIFEST = "_snapshot.json"
BASE_FILE = "_base"
KEEP_RUNS = 6  # staging folders and snapshots kept besides the current one


class PublishRefused(RuntimeError):
    """The snapshot moved since the run started: publishing would mix two runs' outputs."""


@dataclass(frozen=True)
class PublishReport:
    """What one publish did: the snapshot's run, what it wrote and what it carried forward."""

    run_id: str
    previous: str | None
    produced: tuple[str, ...]
    carried: tuple[str, ...]
    seconds: float
    pruned: tuple[str, ...] = field(default_factory=tuple)


def _is_entry(path: Path) -> bool:
    """An asset's file or partition folder (not causalrec's own bookkeeping, not temp files)."""
    return not path.name.startswith((".", "_"))


def _link_or_copy(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(source, target)
    except OSError:  # another file system, or links not allowed: a copy is as good, only bigger
        shutil.copy2(source, target)


def _merge_into(target: Path, source: Path) -> None:
    """Fill ``target`` with hard links to what ``source`` has and ``target`` lacks (partition
    folders merge file by file, so a one-day run keeps every other day)."""
    if source.is_dir():
        target.mkdir(parents=True, exist_ok=True)
        for child in source.iterdir():
            if _is_entry(child):
                _merge_into(target / child.name, child)
    elif not target.exists():
        _link_or_copy(source, target)


def _replace_link(link: Path, target: str) -> None:
    """Point ``link`` at ``target`` in one rename: readers see the old target or the new one."""
    tmp = link.with_name(f".{link.name}.{uuid.uuid4().hex}.tmp")
    os.symlink(target, tmp)
    try:
        os.replace(tmp, link)
    except IsADirectoryError:  # a folder from before write-audit-publish: move it aside first
        aside = link.with_name(f".{link.name}.{uuid.uuid4().hex}.old")
        os.replace(link, aside)
        os.replace(tmp, link)
        shutil.rmtree(aside, ignore_errors=True)
    finally:
        if tmp.is_symlink():
            tmp.unlink()


class Snapshots:
    """The staging areas and published snapshots of one storage folder."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.state = self.root / STATE_DIR
        self.runs = self.state / "runs"
        self.current_link = self.state / "current"

    # -- reading -------------------------------------------------------------------------
    def staging(self, run_id: str) -> Path:
        return self.runs / run_id

    def current_run(self) -> str | None:
        """The run whose snapshot is published now (None before the first publish)."""
        try:
            return Path(os.readlink(self.current_link)).name
        except OSError:
            return None

    def current(self) -> Path | None:
        run = self.current_run()
        return self.staging(run) if run else None

    def pin_base(self, run_id: str) -> str | None:
        """The snapshot ``run_id`` reads from, fixed the first time it is asked (every step of a
        run, in any process, then reads the same snapshot even if another run publishes)."""
        folder = self.staging(run_id)
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / BASE_FILE
        try:
            return path.read_text().strip() or None
        except FileNotFoundError:
            pass
        tmp = folder / f".{BASE_FILE}.{uuid.uuid4().hex}"
        tmp.write_text(self.current_run() or "")
        try:
            os.link(tmp, path)  # fails if another step pinned first: then theirs holds
        except FileExistsError:
            pass
        finally:
            tmp.unlink()
        return path.read_text().strip() or None

    def base(self, run_id: str) -> str | None:
        try:
            return (self.staging(run_id) / BASE_FILE).read_text().strip() or None
        except FileNotFoundError:
            return None

    def read_roots(self, lineage: Sequence[str]) -> list[Path]:
        """Where a run looks for an input, in order: its own staging, the staging of the runs it
        re-executes (``lineage`` is [run, parent, ...]), then the snapshot its root run started from."""
        roots = [self.staging(r) for r in lineage]
        base = self.base(lineage[-1]) if lineage else None
        if base is None and lineage:
            base = self.pin_base(lineage[-1])
        if base:
            roots.append(self.staging(base))
        return roots

    def manifest(self, run_id: str) -> dict | None:
        try:
            return json.loads((self.staging(run_id) / MANIFEST).read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return None

    def history(self) -> list[dict]:
        """Every snapshot still on disk, newest first (the first is the published one)."""
        found = [m for r in (self.runs.iterdir() if self.runs.is_dir() else []) if (m := self.manifest(r.name))]
        return sorted(found, key=lambda m: m["published_at"], reverse=True)

    # -- publishing ----------------------------------------------------------------------
    def publish(self, lineage: Sequence[str], *, check_base: bool = True) -> PublishReport:
        """Publish the staging of ``lineage[0]`` (completed from its parents' staging and its base)
        as the current snapshot, in one atomic switch. With ``check_base``, refuse when another
        run published since this one started (its inputs would not match the snapshot)."""
        start = time.perf_counter()
        run_id = lineage[0]
        target = self.staging(run_id)
        if not target.is_dir():
            raise FileNotFoundError(f"run {run_id} has no staging folder under {self.runs}")
        previous = self.current_run()
        base = self.base(lineage[-1])
        if check_base and previous not in (base, run_id):
            raise PublishRefused(
                f"storage {self.root}: run {previous} published after run {run_id} started from "
                f"{base or 'an empty storage'}; publishing now would mix the two. Its outputs stay staged in {target}."
            )
        produced = sorted(p.name for p in target.iterdir() if _is_entry(p))
        for source_run in [*lineage[1:], previous]:
            if source_run and source_run != run_id and self.staging(source_run).is_dir():
                _merge_into(target, self.staging(source_run))
        self._adopt_unmanaged(target)
        entries = sorted(p.name for p in target.iterdir() if _is_entry(p))
        manifest = {
            "run_id": run_id,
            "lineage": list(lineage),
            "previous": previous,
            "published_at": time.time(),
            "produced": produced,
            "assets": entries,
        }
        atomic_write_text(target / MANIFEST, json.dumps(manifest, indent=2))
        self._switch(run_id, entries)
        pruned = self.prune()
        carried = tuple(sorted(set(entries) - set(produced)))
        return PublishReport(run_id, previous, tuple(produced), carried, time.perf_counter() - start, pruned)

    def rollback(self, run_id: str) -> PublishReport:
        """Publish an earlier snapshot again, as it was (see :meth:`history`)."""
        manifest = self.manifest(run_id)
        if manifest is None:
            raise FileNotFoundError(f"no published snapshot of run {run_id} under {self.runs}")
        start, previous = time.perf_counter(), self.current_run()
        self._switch(run_id, manifest["assets"])
        return PublishReport(run_id, previous, (), tuple(manifest["assets"]), time.perf_counter() - start)

    def _switch(self, run_id: str, entries: Sequence[str]) -> None:
        """The one atomic step, then the stable top-level names (new assets get theirs after the
        switch; names the snapshot lacks lose theirs)."""
        _replace_link(self.current_link, os.path.join("runs", run_id))
        for name in entries:
            link = self.root / name
            wanted = os.path.join(STATE_DIR, "current", name)
            if not (link.is_symlink() and os.readlink(link) == wanted):
                _replace_link(link, wanted)
        for link in self.root.iterdir():
            ours = link.is_symlink() and os.readlink(link).startswith(STATE_DIR + os.sep)
            if ours and link.name not in entries:
                link.unlink()

    def _adopt_unmanaged(self, target: Path) -> None:
        """Storage written before write-audit-publish holds plain files at the top level: they
        join the first snapshot (as links), so nothing a user had disappears."""
        for path in self.root.iterdir():
            if _is_entry(path) and not path.is_symlink():
                _merge_into(target / path.name, path)

    def prune(self, keep: int = KEEP_RUNS) -> tuple[str, ...]:
        """Drop all but the newest ``keep`` run folders (the published one always stays)."""
        current = self.current_run()
        folders = sorted(
            (p for p in self.runs.iterdir() if p.is_dir() and p.name != current),
            key=lambda p: p.stat().st_mtime,
            reverse=True,
        )
        dropped = folders[keep:]
        for folder in dropped:
            shutil.rmtree(folder, ignore_errors=True)
        return tuple(p.name for p in dropped)
