"""The causal variables' encodings, fitted once and read by every stage that needs them.

The ``variables`` step fits both on the training log and stores them as the
``variable_encoding`` asset: the discrete ``VariableEncoder`` (the network's variables of any
(user, item) pair) and the row-level ``PairFeaturizer`` (the estimators' features), with the
users, items and item embeddings they were fitted on. Effects and ranking read that asset instead of refitting,
so every stage sees the same bins, topics, taste profiles and text components.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from causalrec_assets.contracts import train_rows, with_default_split
from causalrec_assets.features import PairFeaturizer
from causalrec_assets.variables import VariableEncoder


@dataclass
class VariableEncoding:
    """A fitted ``VariableEncoder`` and ``PairFeaturizer``, and the tables they encode."""

    encoder: VariableEncoder
    featurizer: PairFeaturizer
    users: pl.DataFrame
    items: pl.DataFrame
    item_embeddings: pl.DataFrame


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


def encode_log(
    users: pl.DataFrame,
    items: pl.DataFrame,
    interactions: pl.DataFrame,
    item_topics: pl.DataFrame,
    item_embeddings: pl.DataFrame,
    **settings: int,
) -> EncodedLog:
    """Fit both encodings on the training log and encode the log with them (``settings``:
    ``n_bins``, ``max_levels``, ``text_components``)."""
    logged = with_default_split(interactions)
    train = train_rows(logged)
    encoding = fit_encoding(users, items, train, item_topics, item_embeddings, **settings)
    features = pl.concat(
        [logged.select("user_id", "item_id", "split"), encoding.featurizer.transform(logged)], how="horizontal"
    )
    return EncodedLog(variables=encoding.encoder.transform(train), features=features, encoding=encoding)
