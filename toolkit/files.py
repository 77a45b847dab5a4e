"""Files that are whole or absent, and files checked against what was recorded when written.

``atomic_path`` hands out a temporary sibling to write and renames it onto the target only
when the block ends cleanly (a failure or a kill leaves the old file, or none; a reader never
sees half a file). ``file_record``/``record_problem`` are the one rule for trusting a file
later: its size and sha256 as recorded beside it.
"""

from __future__ import annotations

import hashlib
import os
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

__all__ = ["atomic_path", "atomic_write_text", "file_record", "record_problem", "sha256_file"]

P = TypeVar("P")  # a pathlib.Path or a universal_pathlib.UPath


def sha256_file(path: Path) -> str:
    """The sha256 of a file, read in blocks."""
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def file_record(data: bytes | Path) -> dict[str, Any]:
    """``{"sha256", "bytes"}`` of bytes or of a file: what to record beside it."""
    if isinstance(data, Path):
        return {"sha256": sha256_file(data), "bytes": data.stat().st_size}
    return {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}


def record_problem(name: str, found: Mapping[str, Any], recorded: Mapping[str, Any]) -> str | None:
    """What differs between a file's ``file_record`` (``found``) and the one written with it, or None."""
    if found["bytes"] != recorded.get("bytes"):
        return f"{name} has {found['bytes']} bytes, the record says {recorded.get('bytes')} (truncated or replaced)"
    if found["sha256"] != recorded.get("sha256"):
        return f"{name} has sha256 {found['sha256'][:12]}…, the record says {str(recorded.get('sha256'))[:12]}…"
    return None


def _is_local(path: Any) -> bool:
    return getattr(path, "protocol", "") in ("", "file", "local")


def _replace(tmp: Any, path: Any) -> None:
    """Rename ``tmp`` onto ``path``: one ``rename(2)`` on a local disk, the filesystem's move elsewhere."""
    if not _is_local(path):
        path.fs.mv(tmp.path, path.path)
    elif hasattr(path, "protocol"):  # a local UPath
        os.replace(str(tmp.path), str(path.path))
    else:
        os.replace(tmp, path)


@contextmanager
def atomic_path(path: P, keep_suffix: bool = False) -> Iterator[P]:
    """A temporary sibling of ``path`` (named ``.<name>.<random>.tmp``, or
    ``.<stem>.<random>.tmp<suffix>`` with ``keep_suffix`` for writers that read the extension)
    to write; renamed onto ``path`` when the block ends without an exception, removed otherwise."""
    target: Any = path
    target.parent.mkdir(parents=True, exist_ok=True)
    token = uuid.uuid4().hex
    name = f".{target.stem}.{token}.tmp{target.suffix}" if keep_suffix else f".{target.name}.{token}.tmp"
    tmp = target.with_name(name)
    try:
        yield tmp
        _replace(tmp, target)
    finally:
        if tmp.exists():
            tmp.unlink()


def atomic_write_text(path: P, text: str) -> None:
    """Replace ``path``'s text whole."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)  # type: ignore[attr-defined]
