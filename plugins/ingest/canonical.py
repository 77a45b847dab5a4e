"""Ingest a canonical dataset directory (docs/plugins.md, "ingest"): ``users``, ``items``, ``interactions``.

Lenient about columns on purpose: missing or malformed columns are the validate stage's
job (Great Expectations reports them with samples). Only files that cannot be found or
read at all stop ingestion here.
"""

from __future__ import annotations

import polars as pl
from pydantic import Field

from causalrec_assets.contracts import TABLES, DataContractError, harmonise_id_types
from causalrec_assets.plugin_api import Dataset, IngestPlugin, PluginConfig, PluginContext
from causalrec_plugins.ingest.readers import find_table, read_table, resolve_dir, scan_table, table_candidates


class CanonicalIngest(IngestPlugin):
    """Reads each table from ``NAME.parquet`` (preferred), ``NAME.csv``, or a folder ``NAME/`` of
    such files (e.g. one per day of interactions) with Polars; the interactions as a lazy scan
    (plugin API 1.5), which the ingest stage streams into storage."""

    class Config(PluginConfig):
        path: str = Field(
            default="",
            description="Dataset directory holding users, items and interactions as .parquet "
            "or .csv (empty: $CAUSALREC_DATA).",
        )

    def load(self, context: PluginContext) -> Dataset:
        directory = resolve_dir(self.config.path, "canonical")
        frames: dict[str, pl.DataFrame | pl.LazyFrame] = {}
        for table in TABLES:
            path = find_table(directory, table)
            if path is None:
                tried = ", ".join(p.name for p in table_candidates(directory, table))
                raise DataContractError(f"{table}: no table file in {directory} (tried {tried})")
            if table == "interactions":
                frames[table] = scan_table(path, table)
                context.log.info("%s: scanning %s", table, path)
            else:
                frames[table] = read_table(path, table)
                context.log.info("%s: %d rows from %s", table, frames[table].height, path)
        users, items, interactions = harmonise_id_types(frames["users"], frames["items"], frames["interactions"])
        return Dataset(users=users, items=items, interactions=interactions, name=directory.name)
