"""Ingest Coat (Schnabel et al., ICML 2016) into the canonical tables.

``train.ascii`` holds self-selected ratings (missing not at random), ``test.ascii`` ratings of
uniformly random items: the randomized slice the evaluation asset scores on, so its rows are
``split = "test"``. Every logged pair was rated, hence ``exposure = 1``. The authors'
``propensities.ascii`` is deliberately not read: propensities are this pipeline's job.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import polars as pl
from pydantic import Field

from causalrec_assets.contracts import DataContractError
from causalrec_assets.plugin_api import Dataset, IngestPlugin, PluginConfig, PluginContext
from causalrec_plugins.ingest.readers import read_ascii_matrix, read_lines, require_file, resolve_dir

FEATURES_DIR = "user_item_features"

# Feature-group prefixes of the *_map.txt files, as readable canonical column names.
COLUMN_NAMES = {
    "age": "age_group",
    "fashioninterest": "fashion_interest",
    "jackettype": "jacket_type",
    "onfrontpage": "on_frontpage",
}

COLOUR_WORDS = {"multi": "multicolour", "other": "other colour"}


def decode_one_hot(matrix: np.ndarray, names: list[str], id_column: str, log: logging.Logger) -> pl.DataFrame:
    """One String column per ``group:value`` prefix; a row without exactly one 1 gets null."""
    groups: dict[str, list[int]] = {}
    for index, name in enumerate(names):
        groups.setdefault(name.split(":", 1)[0], []).append(index)
    columns: dict[str, object] = {id_column: np.arange(matrix.shape[0], dtype=np.int64)}
    for group, indices in groups.items():
        block = matrix[:, indices]
        values = np.array([names[i].split(":", 1)[-1] for i in indices], dtype=object)
        decoded = values[block.argmax(axis=1)]
        ambiguous = block.sum(axis=1) != 1
        if ambiguous.any():
            log.warning("coat: %d rows with no single %s value; left null", int(ambiguous.sum()), group)
        decoded[ambiguous] = None
        columns[COLUMN_NAMES.get(group, group)] = decoded.tolist()
    return pl.DataFrame(columns, schema_overrides={id_column: pl.Int64})


def read_features(directory: Path, kind: str, table: str, id_column: str, log: logging.Logger) -> pl.DataFrame:
    """Decode ``<kind>_features.ascii`` with the names in ``<kind>_features_map.txt``."""
    folder = directory / FEATURES_DIR
    matrix = read_ascii_matrix(require_file(folder, f"{kind}_features.ascii", table), table)
    map_path = require_file(folder, f"{kind}_features_map.txt", table)
    names = read_lines(map_path, table)
    if len(names) != matrix.shape[1]:
        raise DataContractError(
            f"{table}: {map_path} names {len(names)} features but the matrix has {matrix.shape[1]} columns"
        )
    return decode_one_hot(matrix, names, id_column, log)


def describe_item(row: dict) -> str:
    """The encoder's text for a jacket, e.g. "women's bomber jacket, navy"."""
    words = []
    if row.get("gender"):
        words.append(f"{row['gender']}'s")
    if row.get("jacket_type") and row["jacket_type"] != "other":
        words.append(row["jacket_type"])
    words.append("jacket")
    text = " ".join(words)
    if row.get("color"):
        text += f", {COLOUR_WORDS.get(row['color'], row['color'])}"
    return text


def ratings_to_rows(matrix: np.ndarray, split: str) -> pl.DataFrame:
    """The nonzero cells of a user x item rating matrix as canonical interaction rows."""
    users, items = np.nonzero(matrix)
    return pl.DataFrame(
        {
            "user_id": users.astype(np.int64),
            "item_id": items.astype(np.int64),
            "exposure": np.ones(len(users), dtype=np.int8),
            "outcome": matrix[users, items].astype(np.float64),
            "split": [split] * len(users),
        },
        schema={
            "user_id": pl.Int64,
            "item_id": pl.Int64,
            "exposure": pl.Int8,
            "outcome": pl.Float64,
            "split": pl.String,
        },
    )


class CoatIngest(IngestPlugin):
    """Reads a Coat folder: rating matrices plus one-hot user and item features."""

    class Config(PluginConfig):
        path: str = Field(
            default="",
            description="Coat folder holding train.ascii, test.ascii and user_item_features/ (empty: $CAUSALREC_DATA).",
        )

    def load(self, context: PluginContext) -> Dataset:
        directory = resolve_dir(self.config.path, "coat")
        users = read_features(directory, "user", "users", "user_id", context.log)
        items = read_features(directory, "item", "items", "item_id", context.log)
        items = items.with_columns(
            pl.Series("text", [describe_item(row) for row in items.iter_rows(named=True)], dtype=pl.String)
        ).select("item_id", "text", pl.exclude("item_id", "text"))
        parts = []
        for split, filename in (("train", "train.ascii"), ("test", "test.ascii")):
            matrix = read_ascii_matrix(require_file(directory, filename, "interactions"), "interactions")
            if matrix.shape != (users.height, items.height):
                raise DataContractError(
                    f"interactions: {directory / filename} is {matrix.shape[0]}x{matrix.shape[1]}, "
                    f"expected {users.height} users x {items.height} items"
                )
            parts.append(ratings_to_rows(matrix, split))
        interactions = pl.concat(parts)
        context.log.info(
            "coat: %d users, %d items, %d train and %d test ratings",
            users.height,
            items.height,
            parts[0].height,
            parts[1].height,
        )
        return Dataset(users=users, items=items, interactions=interactions, name="coat")
