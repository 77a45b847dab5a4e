"""Recognise which ingest plugin can read a dataset folder, from the files it holds.

Lets ``CAUSALREC_DATA`` point at a raw MovieLens or Coat download without the user having to
name the plugin too.
"""

from __future__ import annotations

from pathlib import Path

from causalrec_assets.contracts import TABLES
from causalrec_plugins.ingest.readers import find_table

# Layout name -> the ingest plugin (entry-point name in ``causalrec.ingest``) that reads it.
PLUGIN_FOR_LAYOUT: dict[str, str] = {"canonical": "canonical", "movielens": "movielens", "coat": "coat"}


def detect_layout(path: str | Path) -> str | None:
    """``"canonical"``, ``"movielens"``, ``"coat"``, or None when the folder is none of these."""
    directory = Path(path).expanduser()
    if not directory.is_dir():
        return None
    if all(find_table(directory, table) is not None for table in TABLES):
        return "canonical"
    if (directory / "u.data").is_file():
        return "movielens"
    if (directory / "train.ascii").is_file() and (directory / "test.ascii").is_file():
        return "coat"
    return None
