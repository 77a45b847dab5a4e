"""The ranking stage's plugin protocol: top-K items per user, and a score for every test pair."""

from __future__ import annotations

from abc import abstractmethod
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


class RankingPlugin(Plugin):
    """Ranks unseen items for each user; scores every test pair."""

    stage = "ranking"

    @abstractmethod
    def rank(self, inputs: RankingInputs, context: PluginContext) -> RankingOutput: ...
