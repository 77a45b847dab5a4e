"""Ingest MovieLens-100K (GroupLens) into the canonical tables.

Ratings are self-selected, so every logged pair has ``exposure = 1`` and the rating is the
outcome; there is no randomized slice, so every row is ``split = "train"``.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl
from pydantic import Field

from causalrec_assets.contracts import DataContractError
from causalrec_assets.plugin_api import Dataset, IngestPlugin, PluginConfig, PluginContext
from causalrec_plugins.ingest.readers import read_delimited, read_lines, require_file, resolve_dir

ITEM_FIELDS = ["item_id", "title", "release_date", "video_release_date", "imdb_url"]
USER_FIELDS = ["user_id", "age", "gender", "occupation", "zip_code"]
RATING_FIELDS = ["user_id", "item_id", "rating", "timestamp"]


def select_or_fail(frame: pl.DataFrame, exprs: list[pl.Expr], table: str, path: Path) -> pl.DataFrame:
    """Cast the raw text fields; a non-numeric id, age, rating or time names its file."""
    try:
        return frame.select(exprs)
    except pl.exceptions.InvalidOperationError as err:
        raise DataContractError(f"{table}: {path} has a malformed numeric field: {err}") from None


def age_group(age: pl.Expr) -> pl.Expr:
    """Coarse age bands: few enough levels for a discrete Bayesian network."""
    return (
        pl.when(age < 25)
        .then(pl.lit("<25"))
        .when(age < 35)
        .then(pl.lit("25-34"))
        .when(age < 50)
        .then(pl.lit("35-49"))
        .when(age.is_not_null())
        .then(pl.lit("50+"))
        .otherwise(pl.lit(None, dtype=pl.String))
    )


def read_genres(directory: Path) -> list[str]:
    """Genre names in flag order, from ``u.genre`` (``name|index`` lines)."""
    path = require_file(directory, "u.genre", "items")
    try:
        pairs = [
            (int(index), name) for name, index in (line.rsplit("|", 1) for line in read_lines(path, "items", "latin-1"))
        ]
    except ValueError:
        raise DataContractError(f"items: {path} is not a list of `name|index` lines") from None
    return [name for _, name in sorted(pairs)]


def read_items(directory: Path) -> pl.DataFrame:
    """Items with a text (title plus genres) for the encoder, the first genre, and the year."""
    genres = read_genres(directory)
    path = require_file(directory, "u.item", "items")
    columns = ITEM_FIELDS + [f"g{i}" for i in range(len(genres))]
    raw = read_delimited(path, "items", columns, separator="|", encoding="latin-1")
    flags = [
        pl.when(pl.col(f"g{i}") == "1").then(pl.lit(name)).otherwise(pl.lit(None, dtype=pl.String))
        for i, name in enumerate(genres)
    ]
    release_year = pl.col("release_date").str.slice(-4).cast(pl.Int64, strict=False)
    title_year = pl.col("title").str.extract(r"\((\d{4})\)\s*$", 1).cast(pl.Int64, strict=False)
    with_genres = raw.with_columns(pl.concat_list(flags).list.drop_nulls().alias("_genres"))
    exprs = [
        pl.col("item_id").cast(pl.Int64),
        pl.when(pl.col("_genres").list.len() > 0)
        .then(pl.concat_str(pl.col("title"), pl.lit(". Genres: "), pl.col("_genres").list.join(", ")))
        .otherwise(pl.col("title"))
        .alias("text"),
        pl.col("_genres").list.first().alias("genre"),
        pl.coalesce(release_year, title_year).alias("year"),
    ]
    return select_or_fail(with_genres, exprs, "items", path)


def read_users(directory: Path) -> pl.DataFrame:
    """Users with age, age band, gender and occupation (zip code dropped: too many levels)."""
    path = require_file(directory, "u.user", "users")
    raw = read_delimited(path, "users", USER_FIELDS, separator="|")
    age = pl.col("age").cast(pl.Int64)
    exprs = [pl.col("user_id").cast(pl.Int64), age, age_group(age).alias("age_group"), "gender", "occupation"]
    return select_or_fail(raw, exprs, "users", path)


def read_interactions(directory: Path) -> pl.DataFrame:
    """Every rating as an exposed pair whose outcome is the rating."""
    path = require_file(directory, "u.data", "interactions")
    raw = read_delimited(path, "interactions", RATING_FIELDS, separator="\t")
    exprs = [
        pl.col("user_id").cast(pl.Int64),
        pl.col("item_id").cast(pl.Int64),
        pl.lit(1, dtype=pl.Int8).alias("exposure"),
        pl.col("rating").cast(pl.Float64).alias("outcome"),
        pl.from_epoch(pl.col("timestamp").cast(pl.Int64), time_unit="s").alias("timestamp"),
        pl.lit("train").alias("split"),
    ]
    return select_or_fail(raw, exprs, "interactions", path)


class MovieLensIngest(IngestPlugin):
    """Reads a MovieLens-100K folder (``u.data``, ``u.item``, ``u.user``, ``u.genre``)."""

    class Config(PluginConfig):
        path: str = Field(
            default="", description="MovieLens-100K folder (the one holding u.data; empty: $CAUSALREC_DATA)."
        )

    def load(self, context: PluginContext) -> Dataset:
        directory = resolve_dir(self.config.path, "movielens")
        users = read_users(directory)
        items = read_items(directory)
        interactions = read_interactions(directory)
        context.log.info("movielens: %d users, %d items, %d ratings", users.height, items.height, interactions.height)
        return Dataset(users=users, items=items, interactions=interactions, name="movielens-100k")
