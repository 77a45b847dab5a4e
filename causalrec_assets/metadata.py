"""Materialization metadata: row counts, previews, and pictures a person would rather see."""

from __future__ import annotations

from typing import Any

import dagster as dg
import polars as pl

from causalrec_assets.graph_picture import graph_picture  # noqa: F401  (moved; kept importable here)

OWNERS = ["team:causalrec"]


def markdown(frame: pl.DataFrame, rows: int = 20) -> dg.MetadataValue:
    head = frame.head(rows)
    cells = [[("" if v is None else (f"{v:.4g}" if isinstance(v, float) else str(v))) for v in r] for r in head.rows()]
    lines = ["| " + " | ".join(head.columns) + " |", "|" + "---|" * len(head.columns)]
    lines += ["| " + " | ".join(c) + " |" for c in cells]
    return dg.MetadataValue.md("\n".join(lines))


def markdown_dict(values: dict[str, Any]) -> dg.MetadataValue:
    return dg.MetadataValue.md("\n".join(f"- **{k}**: {v}" for k, v in values.items()))


def table_metadata(frame: pl.DataFrame, preview: bool = True) -> dict[str, Any]:
    meta: dict[str, Any] = {"dagster/row_count": frame.height, "columns": ", ".join(frame.columns)}
    if preview:
        meta["preview"] = markdown(frame.head(5))
    return meta


def interaction_metadata(interactions: pl.DataFrame) -> dict[str, Any]:
    meta = table_metadata(interactions)
    if "split" in interactions.columns:
        for split, n in interactions.group_by("split").len().iter_rows():
            meta[f"rows_{split}"] = n
    if "exposure" in interactions.columns and interactions.schema["exposure"].is_numeric():
        meta["exposure_rate"] = float(interactions["exposure"].mean() or 0.0)
    return meta
