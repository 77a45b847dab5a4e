"""The causal variables' encodings, fitted once and read by every stage that needs them.

The ``variables`` step fits both on the training log and stores them as the
``variable_encoding`` asset: the discrete ``VariableEncoder`` (the network's variables of any
(user, item) pair) and the row-level ``PairFeaturizer`` (the estimators' features), with the
users, items and item embeddings they were fitted on. Effects and ranking read that asset instead of refitting,
so every stage sees the same bins, topics, taste profiles and text components.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import polars as pl

from causalrec_toolkit import __version__
from causalrec_toolkit.features import PairFeaturizer
from causalrec_toolkit.tables import InProcess, ShardMapper, split_by_user, train_rows, user_shards, with_default_split
from causalrec_toolkit.variables import OUTCOME, TREATMENT, VariableEncoder

__all__ = [
    "EncodedLog",
    "EncodingVersionError",
    "VariableEncoding",
    "check_encoding",
    "encode_log",
    "fit_encoding",
    "pair_features",
    "stored",
]


@dataclass
class VariableEncoding:
    """A fitted ``VariableEncoder`` and ``PairFeaturizer``, and the tables they encode, stamped
    with the toolkit version that fitted them (``check_encoding`` refuses another's pickle)."""

    encoder: VariableEncoder
    featurizer: PairFeaturizer
    users: pl.DataFrame
    items: pl.DataFrame
    item_embeddings: pl.DataFrame
    toolkit_version: str = field(default_factory=lambda: __version__)


class EncodingVersionError(ValueError):
    """A stored encoding was fitted by another toolkit version: its pickled state may not fit this code."""


def check_encoding(encoding: VariableEncoding) -> VariableEncoding:
    """``encoding`` itself where this toolkit version fitted it; else an error naming both versions."""
    stamp = vars(encoding).get("toolkit_version")  # absent in pickles from before the stamp
    if stamp != __version__:
        raise EncodingVersionError(
            f"variable_encoding was fitted by causalrec_toolkit {stamp or 'before 0.2.0'}, this is {__version__}:"
            " materialize the structure stage again (causalrec_variables and variable_encoding) before ranking"
        )
    return encoding


def fit_encoding(
    users: pl.DataFrame,
    items: pl.DataFrame,
    train: pl.DataFrame,
    item_topics: pl.DataFrame,
    item_embeddings: pl.DataFrame,
    *,
    n_bins: int = 4,
    max_levels: int = 12,
    text_components: int = 8,
) -> VariableEncoding:
    """Both encodings fitted on the training log ``train``."""
    encoder = VariableEncoder(n_bins=n_bins, max_levels=max_levels).fit(
        users, items, train, item_topics, item_embeddings=item_embeddings
    )
    featurizer = PairFeaturizer(n_components=text_components).fit(
        users, items, train, item_embeddings, item_topics, affinity=encoder.affinity
    )
    return VariableEncoding(encoder, featurizer, users, items, item_embeddings)


@dataclass
class EncodedLog:
    """The logged pairs as the causal model sees them: ``variables`` (one discrete row per
    training pair), ``features`` (every logged pair, training and test, as row-level features
    with ``user_id``, ``item_id``, ``split``), and the ``encoding`` that made both."""

    variables: pl.DataFrame
    features: pl.DataFrame
    encoding: VariableEncoding


FEATURE_ROWS = 1_000_000  # pairs featurised at once within a shard


def featurize_shard(part: tuple[PairFeaturizer, pl.DataFrame]) -> pl.DataFrame:
    """One user shard's pairs (``_row, user_id, item_id, split``, exposure, outcome) with their
    features (``stored``), a bounded slice at a time (what a worker runs)."""
    featurizer, pairs = part
    keys = ["_row", "user_id", "item_id", "split"]
    slices = [pairs.slice(s, FEATURE_ROWS) for s in range(0, max(pairs.height, 1), FEATURE_ROWS)]
    return pl.concat([pl.concat([p.select(keys), stored(featurizer.transform(p))], how="horizontal") for p in slices])


def stored(features: pl.DataFrame) -> pl.DataFrame:
    """Features as stored in ``pair_features``: float32 (half the memory and disk of a large
    log; estimators widen them to float64 exactly), category codes, exposure and the outcome as
    they are."""
    return features.with_columns(pl.col(pl.Float64).exclude(TREATMENT, OUTCOME).cast(pl.Float32))


def pair_features(
    featurizer: PairFeaturizer, logged: pl.DataFrame, compute: ShardMapper | None = None
) -> pl.DataFrame:
    """Every logged pair's row-level features with ``user_id``, ``item_id``, ``split``, in the
    log's order, computed user shard by user shard (a pair's features read only its user's log
    and the item tables: each shard is sent the featurizer's state of its own users)."""
    compute = compute or InProcess()
    columns = [c for c in ("user_id", "item_id", "split", TREATMENT, OUTCOME) if c in logged.columns]
    indexed = logged.select(columns).with_row_index("_row")
    users = indexed.select("user_id").unique()
    shards = compute.shard_count
    parts = split_by_user(indexed, users.with_columns(user_shards(users["user_id"], shards)), shards)
    mine = ((featurizer.for_users(p.select("user_id").unique()), p) for p in parts if p.height)
    if not indexed.height:
        return featurize_shard((featurizer, indexed)).drop("_row")
    return in_row_order(pl.concat(list(compute.map(featurize_shard, mine))))  # the shards' frames go with the list


def in_row_order(frame: pl.DataFrame) -> pl.DataFrame:
    """``frame`` sorted by its ``_row`` column (dropped), one column at a time: each column goes
    as its sorted copy is made, so the table is never held twice (``DataFrame.drop`` would not
    do: it may rechunk the columns it keeps)."""
    order = frame["_row"].arg_sort()
    columns = [column for column in frame.get_columns() if column.name != "_row"]
    del frame
    ordered = []
    while columns:
        ordered.append(columns.pop(0).gather(order))
    return pl.DataFrame(ordered)


def encode_log(
    users: pl.DataFrame,
    items: pl.DataFrame,
    interactions: pl.DataFrame,
    item_topics: pl.DataFrame,
    item_embeddings: pl.DataFrame,
    compute: ShardMapper | None = None,
    **settings: int,
) -> EncodedLog:
    """Fit both encodings on the training log and encode the log with them (``settings``:
    ``n_bins``, ``max_levels``, ``text_components``); the features user shard by user shard
    on ``compute``."""
    logged = with_default_split(interactions)
    train = train_rows(logged)
    encoding = fit_encoding(users, items, train, item_topics, item_embeddings, **settings)
    variables = encoding.encoder.transform(train)  # first: its transient strings go before the features come
    features = pair_features(encoding.featurizer, logged, compute)
    return EncodedLog(variables=variables, features=features, encoding=encoding)
