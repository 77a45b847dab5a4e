"""The ranking stage's plugin protocol: top-K items per user, and a score for every test pair.

Since plugin API 1.4 a ranker is fitted once and then asked, batch after batch of users, for
their lists (``RankingPlugin.fit`` returns a ``Ranker``): memory depends on the batch, not on
users x candidates, and the user shards of a cluster all score with the one fitted model.
Plugins written for 1.3 and before implement ``rank`` alone and keep working.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any

import polars as pl
from pydantic import Field

from causalrec_assets.plugin_api import Plugin, PluginConfig, PluginContext


class TopKConfig(PluginConfig):
    """The parameter every ranker has: how many items to recommend to each user."""

    k: int = Field(default=10, ge=1, description="Recommendations per user.")


@dataclass
class RankingInputs:
    users: pl.DataFrame
    items: pl.DataFrame
    interactions: pl.DataFrame
    item_embeddings: pl.DataFrame
    user_embeddings: pl.DataFrame
    variables: pl.DataFrame  # discretised per-pair variables of the training log (row-aligned)
    variable_encoder: Any  # VariableEncoder: turns (user_id, item_id) pairs into the same variables
    edges: list[tuple[str, str]]
    network: Any  # the fitted pgmpy DiscreteBayesianNetwork
    treatment_effects: pl.DataFrame
    pair_featurizer: Any = None  # since 1.1: a fitted PairFeaturizer (row-level features of any pairs)


@dataclass
class RankingOutput:
    recommendations: pl.DataFrame  # user_id, item_id, rank, score
    test_scores: pl.DataFrame  # user_id, item_id, score for every split = test pair


class Ranker(ABC):
    """A fitted ranking model (since 1.4): what ``RankingPlugin.fit`` returns.

    The stage hands it the users to rank in batches, each with the training pairs of those
    users (``seen``), and keeps each batch's lists; on a cluster it sends each user shard the
    part of the model those users need (``for_users``), so a worker's memory follows its shard.
    It must be picklable and must not change once fitted: a batch's lists depend on the model
    and that batch's users only, so batches and shards give the lists one call would."""

    k: int = 10

    @abstractmethod
    def score(self, pairs: pl.DataFrame) -> pl.DataFrame:
        """``user_id, item_id, score`` for each of ``pairs`` (``user_id, item_id``), in order;
        pairs of users or items the model has not seen get a finite score too."""

    @abstractmethod
    def recommend(self, users: pl.DataFrame, seen: pl.DataFrame) -> pl.DataFrame:
        """``user_id, item_id, rank, score``: the ``k`` best items of each of ``users`` that are
        not among its ``seen`` pairs (the training pairs of exactly these users)."""

    def for_users(self, users: pl.DataFrame) -> Ranker:
        """The part of the model that ``users`` need (what one shard is sent); itself by default."""
        return self

    def explain(self, recommendations: pl.DataFrame) -> pl.DataFrame | None:
        """Since plugin API 1.6: why each of ``recommendations`` (``user_id, item_id, rank,
        score``) scored as it did: ``user_id, item_id, modifier, contribution`` rows, a few per
        pair, largest first (``EXPLANATION_COLUMNS``). None (the default): this ranker cannot say."""
        return None


EXPLANATION_COLUMNS = {"user_id": None, "item_id": None, "modifier": pl.Utf8, "contribution": pl.Float64}


class RankingPlugin(Plugin):
    """Ranks unseen items for each user; scores every test pair.

    Implement ``fit`` (since 1.4: the stage recommends in bounded batches and shards) or, as
    before, ``rank`` (the whole answer in one call)."""

    stage = "ranking"

    def fit(self, inputs: RankingInputs, context: PluginContext) -> Ranker:
        """The ranker fitted on ``inputs`` (its training log, encodings and graph)."""
        raise NotImplementedError(f"{type(self).__qualname__} implements rank() only")

    def rank(self, inputs: RankingInputs, context: PluginContext) -> RankingOutput:
        """The whole answer at once: by default ``fit``, then every user in bounded batches."""
        from causalrec_assets.stages.ranking.batches import rank_with

        return rank_with(self.fit(inputs, context), inputs, context)

    @classmethod
    def fits(cls) -> bool:
        """Whether this plugin implements ``fit`` (plugin API 1.4) rather than ``rank`` alone."""
        return cls.fit is not RankingPlugin.fit

    @classmethod
    def missing_methods(cls) -> list[str]:
        both_default = not cls.fits() and cls.rank is RankingPlugin.rank
        return ["fit (or rank)"] if both_default else []
