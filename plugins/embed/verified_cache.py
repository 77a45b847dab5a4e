"""Cached files that are trusted only when their bytes match a manifest written with them.

A cached graph is ``<key>.onnx`` beside ``<key>.json``, a manifest naming what the key was
derived from (model files, recipe, library versions) and the sha256 and size of every cached
file. Reading re-hashes the file: a tampered, truncated or manifest-less file is refused with a
warning, discarded and rebuilt. Builds run under a per-key file lock into a temporary name,
and the graph and its manifest are renamed into place only once complete, so a killed or
concurrent build never leaves a half file that is trusted.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from causalrec_toolkit.files import atomic_path, atomic_write_text, file_record, record_problem, sha256_file

MANIFEST_FORMAT = 1

log = logging.getLogger("causalrec.embed.verified_cache")

# (size, mtime, ctime, inode) -> sha256 of source files; ctime moves on every write (and on
# utime), so a file rewritten to the same size and mtime is still hashed again.
_MEMO: dict[str, list[Any]] = {}


def _stat_id(path: Path) -> list[int]:
    s = path.stat()
    return [s.st_size, s.st_mtime_ns, s.st_ctime_ns, s.st_ino]


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _write_json(path: Path, value: Any) -> None:
    atomic_write_text(path, json.dumps(value, indent=2, sort_keys=True))


def memo_sha256(path: Path, memo_file: Path | None = None) -> str:
    """sha256 of a (large, rarely changing) source file, remembered in this process and in
    ``memo_file`` by its stat identity, so a model's weights are not re-read by every run."""
    path = Path(path).resolve()
    stat, name = _stat_id(path), str(path)
    disk = (_read_json(memo_file) or {}) if memo_file is not None else {}
    for entry in (_MEMO.get(name), disk.get(name) if isinstance(disk, dict) else None):
        if isinstance(entry, list) and len(entry) == 2 and entry[0] == stat:
            return str(entry[1])
    digest = sha256_file(path)
    _MEMO[name] = [stat, digest]
    if memo_file is not None and isinstance(disk, dict):
        memo_file.parent.mkdir(parents=True, exist_ok=True)
        _write_json(memo_file, disk | {name: [stat, digest]})  # last writer wins: a lost entry is re-hashed
    return digest


def manifest_path(target: Path) -> Path:
    return target.with_suffix(".json")


@dataclass(frozen=True)
class Cached:
    """A verified cached file: where it is, its sha256, and what its build recorded."""

    path: Path
    sha256: str
    facts: dict[str, Any]


def _problem(target: Path, identity: Mapping[str, Any]) -> tuple[dict | None, str | None]:
    """(manifest, None) when ``target`` is what its manifest says and the manifest names
    ``identity``; (None, what differed) otherwise; (None, None) when neither exists."""
    manifest_file = manifest_path(target)
    if not target.exists() and not manifest_file.exists():
        return None, None
    if not manifest_file.is_file():
        return None, f"no manifest {manifest_file.name}"
    manifest = _read_json(manifest_file)
    if not isinstance(manifest, dict) or not isinstance(manifest.get("files"), dict):
        return None, f"unreadable manifest {manifest_file.name}"
    expected = {"format": MANIFEST_FORMAT, **identity}
    differs = [k for k, v in expected.items() if manifest.get(k) != v]
    if differs:
        return None, f"manifest {manifest_file.name} differs in {', '.join(differs)}"
    if target.name not in manifest["files"]:
        return None, f"manifest {manifest_file.name} does not list {target.name}"
    for name, want in manifest["files"].items():
        path = target.parent / name
        if not path.is_file():
            return None, f"{name} is missing"
        problem = record_problem(name, file_record(path), want)
        if problem:
            return None, problem
    return manifest, None


@contextmanager
def _locked(target: Path, shared: bool = False) -> Iterator[None]:
    """Processes may check a cached file together (shared); one at a time rebuilds it."""
    with open(target.with_name(f".{target.name}.lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_SH if shared else fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def cached_build(
    target: Path,
    identity: Mapping[str, Any],
    build: Callable[[Path], Mapping[str, Any] | None],
    logger: Any = None,
) -> Cached:
    """The verified ``target``, built first by ``build(tmp_path)`` (which returns facts for the
    manifest) when absent or refused. ``identity`` is what the file's key was derived from;
    ``logger`` (e.g. a Dagster run's, so the UI shows it) gets the refusal warning."""
    identity = json.loads(json.dumps(identity))  # compared as it reads back (tuples become lists)
    target.parent.mkdir(parents=True, exist_ok=True)
    with _locked(target, shared=True):
        manifest, _ = _problem(target, identity)
    if manifest is None:
        with _locked(target):
            manifest, problem = _problem(target, identity)  # another process may have rebuilt it meanwhile
            if manifest is None:
                if problem:
                    (logger or log).warning(
                        "refusing cached file %s: %s; discarding and rebuilding it", target, problem
                    )
                manifest = _rebuild(target, identity, build)
    return Cached(target, manifest["files"][target.name]["sha256"], dict(manifest.get("facts") or {}))


def _rebuild(target: Path, identity: dict[str, Any], build: Callable[[Path], Mapping[str, Any] | None]) -> dict:
    """Under the exclusive lock: discard, build to a temporary name, rename, write the manifest,
    and verify the result like any later reader will."""
    for stale in [target, manifest_path(target), *target.parent.glob(f".{target.stem}.*.tmp*")]:
        stale.unlink(missing_ok=True)  # including what killed builds left behind
    with atomic_path(target, keep_suffix=True) as tmp:
        facts = dict(build(tmp) or {})
        files = {target.name: file_record(tmp)}
    _write_json(manifest_path(target), {"format": MANIFEST_FORMAT, **identity, "files": files, "facts": facts})
    manifest, problem = _problem(target, identity)
    if manifest is None:
        raise RuntimeError(f"cached file {target} fails verification right after its build: {problem}")
    return manifest


def key_of(payload: Mapping[str, Any]) -> str:
    """A short, stable hash of a JSON-able payload (a cache key)."""
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:20]
