"""Materialization metadata: row counts, previews, and pictures a person would rather see.

Every number goes through ``rounded`` (4 significant digits): the Dagster UI prints every digit
it is given, and 16 of them hide the three that matter."""

from __future__ import annotations

import base64
import math
from typing import Any

import dagster as dg
import numpy as np
import polars as pl

from causalrec_assets.registry import get_registry

OWNERS = ["team:causalrec"]
DIGITS = 4


def rounded(value: Any, digits: int = DIGITS) -> Any:
    """``value`` with every float (also inside lists and dicts) cut to ``digits`` significant
    digits; NaN and infinities as they are, anything else unchanged."""
    if isinstance(value, dict):
        return {k: rounded(v, digits) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [rounded(v, digits) for v in value]
    if isinstance(value, float | np.floating):
        value = float(value)
        return float(f"{value:.{digits}g}") if math.isfinite(value) else value
    return value


def number(value: float | None, digits: int = DIGITS) -> str:
    """A float as text with ``digits`` significant digits (``rounded``'s rule, for labels)."""
    return "n/a" if value is None else f"{float(value):.{digits}g}"


def plugin_metadata(stage: str, name: str) -> dict[str, str]:
    """Which plugin made an asset: its name, and the distribution and version it came from."""
    info = get_registry().infos.get(stage, {}).get(name)
    return {
        "plugin": name,
        "plugin_distribution": info.distribution if info else "unknown",
        "plugin_version": info.version if info else "unknown",
    }


def effect_metadata(
    estimate: float, ci_low: float | None, ci_high: float | None, true_ate: float | None = None
) -> dict[str, Any]:
    """The headline ATE as one value with its interval (``ate``), the same numbers as numeric
    keys for machines, and, where the dataset knows the true ATE, it and whether it is covered."""
    meta: dict[str, Any] = {
        "ate": f"{number(estimate)} [{number(ci_low)}, {number(ci_high)}]",
        "headline_ate": rounded(estimate),
        "headline_ci_low": rounded(ci_low),
        "headline_ci_high": rounded(ci_high),
    }
    if true_ate is not None:
        covered = ci_low is not None and ci_high is not None and ci_low <= true_ate <= ci_high
        meta |= {
            "true_ate": rounded(true_ate),
            "ci_covers_truth": covered,
            "error": rounded(estimate - true_ate),
        }
    return meta


def column_schema(frame: pl.DataFrame) -> dg.TableSchemaMetadataValue:
    """``dagster/column_schema``: the UI's Columns section."""
    columns = [dg.TableColumn(name, str(dtype)) for name, dtype in frame.schema.items()]
    return dg.MetadataValue.table_schema(dg.TableSchema(columns=columns))


def _cell(value: Any) -> str | int | float | bool | None:
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return rounded(value) if math.isfinite(value) else str(value)
    text = str(value)
    return text if len(text) <= 60 else text[:57] + "..."


def table(frame: pl.DataFrame, rows: int = 20) -> dg.TableMetadataValue:
    """The first ``rows`` rows as a table the UI shows inline (floats rounded, long cells cut)."""
    head = frame.head(rows)
    records = [dg.TableRecord({k: _cell(v) for k, v in r.items()}) for r in head.iter_rows(named=True)]
    return dg.MetadataValue.table(records, schema=column_schema(head).schema)


def picture(png: bytes, title: str) -> dg.MetadataValue:
    """A PNG as Markdown metadata (the Dagster UI renders the embedded image)."""
    return dg.MetadataValue.md(f"![{title}](data:image/png;base64,{base64.b64encode(png).decode()})")


def markdown(frame: pl.DataFrame, rows: int = 20) -> dg.MetadataValue:
    head = frame.head(rows)
    cells = [[("" if v is None else (f"{v:.4g}" if isinstance(v, float) else str(v))) for v in r] for r in head.rows()]
    lines = ["| " + " | ".join(head.columns) + " |", "|" + "---|" * len(head.columns)]
    lines += ["| " + " | ".join(c) + " |" for c in cells]
    return dg.MetadataValue.md("\n".join(lines))


def markdown_dict(values: dict[str, Any]) -> dg.MetadataValue:
    return dg.MetadataValue.md("\n".join(f"- **{k}**: {v}" for k, v in values.items()))


def table_metadata(frame: pl.DataFrame, preview: int = 5) -> dict[str, Any]:
    """Row count, column schema and (``preview`` > 0) the first rows of a table asset."""
    meta: dict[str, Any] = {"dagster/row_count": frame.height, "dagster/column_schema": column_schema(frame)}
    if preview:
        meta["preview"] = table(frame, preview)
    return meta


def interaction_metadata(interactions: pl.DataFrame | pl.LazyFrame) -> dict[str, Any]:
    """Rows, schema, preview, rows per split and the exposure rate; of a lazy log in one
    streaming pass (nothing but the preview is held)."""
    lazy, schema = interactions.lazy(), interactions.collect_schema()
    head = lazy.head(5).collect()
    meta: dict[str, Any] = {"dagster/column_schema": column_schema(head), "preview": table(head, 5)}
    stats = [pl.len().alias("rows")]
    exposure = "exposure" in schema and schema["exposure"].is_numeric()
    if exposure:
        stats += [pl.col("exposure").cast(pl.Float64).sum().alias("exposed"), pl.col("exposure").count().alias("n")]
    splits = ["split"] if "split" in schema else []
    parts = (lazy.group_by(splits).agg(stats) if splits else lazy.select(stats)).collect(engine="streaming")
    meta["dagster/row_count"] = int(parts["rows"].sum())
    for split, n in parts.sort("split").select("split", "rows").iter_rows() if splits else ():
        meta[f"rows_{split}"] = n
    if exposure:
        n = int(parts["n"].sum())
        meta["exposure_rate"] = rounded(float(parts["exposed"].sum()) / n if n else 0.0)
    return meta
