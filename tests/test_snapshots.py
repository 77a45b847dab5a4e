"""Write-audit-publish and the storage lease, as plain functions: staging stays invisible until
one atomic switch, partitions merge, a moved snapshot refuses a stale publish, a dead lease
is taken over and a live one is waited on or refused with the holder named."""

from __future__ import annotations

import multiprocessing
import os
import time
from pathlib import Path

import pytest

from causalrec_resources.snapshots import PublishRefused, Snapshots
from causalrec_resources.storage_lock import StorageBusy, StorageLock
from tests.conftest import published_files


def _stage(snaps: Snapshots, run_id: str, files: dict[str, str]) -> None:
    snaps.pin_base(run_id)
    for name, text in files.items():
        path = snaps.staging(run_id) / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def _published(root: Path) -> dict[str, str]:
    """What a reader of ``<storage>/...`` sees (links followed), causalrec's own folder aside."""
    return {name: (root / name).read_text() for name in published_files(root)}


def test_staged_outputs_are_invisible_until_published(tmp_path):
    snaps = Snapshots(tmp_path)
    _stage(snaps, "a", {"users.parquet": "users-a", "causal_graph.json": "graph-a"})
    assert _published(tmp_path) == {}
    report = snaps.publish(["a"])
    assert _published(tmp_path) == {"causal_graph.json": "graph-a", "users.parquet": "users-a"}
    assert report.produced == ("causal_graph.json", "users.parquet") and report.previous is None
    assert (tmp_path / "users.parquet").is_symlink()

    _stage(snaps, "b", {"users.parquet": "users-b"})  # a run that only rewrote users
    assert _published(tmp_path)["users.parquet"] == "users-a"  # staging changes nothing
    report = snaps.publish(["b"])
    assert _published(tmp_path) == {"causal_graph.json": "graph-a", "users.parquet": "users-b"}
    assert report.carried == ("causal_graph.json",)
    assert [m["run_id"] for m in snaps.history()] == ["b", "a"]


def test_partitions_merge_file_by_file_and_rollback_restores(tmp_path):
    snaps = Snapshots(tmp_path)
    _stage(snaps, "a", {"interactions/2024-01-01.parquet": "day1", "interactions/2024-01-02.parquet": "day2"})
    snaps.publish(["a"])
    _stage(snaps, "b", {"interactions/2024-01-02.parquet": "day2-fixed", "interactions/2024-01-03.parquet": "day3"})
    snaps.publish(["b"])
    assert _published(tmp_path) == {
        "interactions/2024-01-01.parquet": "day1",
        "interactions/2024-01-02.parquet": "day2-fixed",
        "interactions/2024-01-03.parquet": "day3",
    }
    snaps.rollback("a")
    assert _published(tmp_path) == {
        "interactions/2024-01-01.parquet": "day1",
        "interactions/2024-01-02.parquet": "day2",
    }


def test_reexecution_reads_and_publishes_its_parents_staging(tmp_path):
    snaps = Snapshots(tmp_path)
    _stage(snaps, "good", {"users.parquet": "old", "recommendations.parquet": "old-recs"})
    snaps.publish(["good"])
    _stage(snaps, "failed", {"users.parquet": "new"})  # failed after ingest: never published
    assert snaps.read_roots(["retry", "failed"])[:2] == [snaps.staging("retry"), snaps.staging("failed")]
    assert snaps.read_roots(["retry", "failed"])[-1] == snaps.staging("good")  # the root run's base
    _stage(snaps, "retry", {"recommendations.parquet": "new-recs"})
    snaps.publish(["retry", "failed"])
    assert _published(tmp_path) == {"recommendations.parquet": "new-recs", "users.parquet": "new"}


def test_a_run_that_started_before_another_published_is_refused(tmp_path):
    snaps = Snapshots(tmp_path)
    _stage(snaps, "first", {"users.parquet": "1"})
    _stage(snaps, "second", {"users.parquet": "2"})  # both started from an empty storage
    snaps.publish(["first"])
    with pytest.raises(PublishRefused, match="run first published after run second started"):
        snaps.publish(["second"])
    assert _published(tmp_path) == {"users.parquet": "1"}


def test_files_from_before_write_audit_publish_are_kept(tmp_path):
    (tmp_path / "users.parquet").write_text("legacy")
    (tmp_path / "item_embeddings.parquet").write_text("legacy-emb")
    snaps = Snapshots(tmp_path)
    _stage(snaps, "a", {"users.parquet": "new"})
    snaps.publish(["a"])
    assert _published(tmp_path) == {"item_embeddings.parquet": "legacy-emb", "users.parquet": "new"}


def test_a_killed_publish_leaves_the_previous_snapshot(tmp_path, monkeypatch):
    snaps = Snapshots(tmp_path)
    _stage(snaps, "a", {"users.parquet": "a", "items.parquet": "a"})
    snaps.publish(["a"])
    _stage(snaps, "b", {"users.parquet": "b", "items.parquet": "b"})

    def killed(*_args, **_kwargs):
        raise KeyboardInterrupt  # dies just before the switch

    monkeypatch.setattr("causalrec_resources.snapshots._replace_link", killed)
    with pytest.raises(KeyboardInterrupt):
        snaps.publish(["b"])
    assert _published(tmp_path) == {"items.parquet": "a", "users.parquet": "a"}


def _hold(state: str, ready, release) -> None:
    StorageLock(Path(state)).acquire("holder", os.getpid(), wait_s=0)
    ready.set()
    release.wait(30)


def test_a_live_lease_is_refused_with_its_holder_named_then_freed_when_it_dies(tmp_path):
    ctx = multiprocessing.get_context("spawn")
    ready, release = ctx.Event(), ctx.Event()
    holder = ctx.Process(target=_hold, args=(str(tmp_path), ready, release))
    holder.start()
    assert ready.wait(60)
    lock = StorageLock(tmp_path)
    with pytest.raises(StorageBusy, match=rf"in use by run holder \(pid {holder.pid}.*waited 1 s"):
        lock.acquire("second", os.getpid(), wait_s=1)
    holder.kill()  # SIGKILL: no clean-up runs
    holder.join()
    assert lock.acquire("second", os.getpid(), wait_s=5) == "holder"  # taken over, named
    assert lock.holder()[0].run_id == "second"


def test_a_waiting_run_gets_the_lease_when_the_holder_releases(tmp_path):
    lock = StorageLock(tmp_path, run_finished=lambda run: run == "done")
    lock.acquire("first", os.getppid(), wait_s=0)  # a live process of this host that is not us
    start = time.monotonic()
    with pytest.raises(StorageBusy):
        lock.acquire("second", os.getpid(), wait_s=0)
    lock.release("first")
    assert lock.acquire("second", os.getpid(), wait_s=5) is None
    assert time.monotonic() - start < 5
    finished = StorageLock(tmp_path, run_finished=lambda run: run == "second")
    assert finished.acquire("third", os.getppid(), wait_s=0) == "second"  # a finished run's lease is dead
