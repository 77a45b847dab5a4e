"""The ranking stage's plugin protocol: top-K items per user, and a score for every test pair.

Since plugin API 1.4 a ranker is fitted once and then asked, batch after batch of users, for
their lists (``RankingPlugin.fit`` returns a ``Ranker``): memory depends on the batch, not on
users x candidates, and the user shards of a cluster all score with the one fitted model.
Plugins written for 1.3 and before implement ``rank`` alone and keep working.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import polars as pl
from pydantic import Field

from causalrec_assets.plugin_api import Plugin, PluginConfig, PluginContext
from causalrec_toolkit.rankers import EXPLANATION_COLUMNS, Ranker

if TYPE_CHECKING:
    from causalrec_toolkit.features import PairFeaturizer
    from causalrec_toolkit.variables import VariableEncoder

__all__ = [
    "EXPLANATION_COLUMNS",
    "CandidateConfig",
    "Ranker",
    "RankingInputs",
    "RankingOutput",
    "RankingPlugin",
    "TopKConfig",
]


class TopKConfig(PluginConfig):
    """The parameter every ranker has: how many items to recommend to each user."""

    k: int = Field(default=10, ge=1, description="Recommendations per user.")


class CandidateConfig(TopKConfig):
    """How many candidates per user each source gives (see ``causalrec_toolkit.retrieval``)."""

    nearest_candidates: int = Field(
        default=100, ge=0, description="Items nearest the user's taste (approximate nearest neighbours)."
    )
    neighbour_candidates: int = Field(
        default=100, ge=0, description="Items the ranker's score rates highest for the sampled user of nearest taste."
    )
    prior_candidates: int = Field(
        default=50, ge=0, description="Items the ranker's score rates highest on average over the sampled users."
    )
    explore_candidates: int = Field(default=50, ge=0, description="Items drawn at random per user.")
    sampled_users: int = Field(default=200, ge=1, description="Users sampled and scored against every item.")
    candidate_seed: int = Field(default=0, description="Seed of the user sample and of the random items.")

    @property
    def per_user(self) -> int:
        return self.nearest_candidates + self.neighbour_candidates + self.prior_candidates + self.explore_candidates


@dataclass
class RankingInputs:
    users: pl.DataFrame
    items: pl.DataFrame
    interactions: pl.DataFrame
    item_embeddings: pl.DataFrame
    user_embeddings: pl.DataFrame
    variables: pl.DataFrame  # discretised per-pair variables of the training log (row-aligned)
    variable_encoder: VariableEncoder  # turns (user_id, item_id) pairs into the same variables
    edges: list[tuple[str, str]]
    network: Any  # the fitted pgmpy DiscreteBayesianNetwork
    treatment_effects: pl.DataFrame
    pair_featurizer: PairFeaturizer | None = None  # since 1.1: row-level features of any pairs


@dataclass
class RankingOutput:
    recommendations: pl.DataFrame  # user_id, item_id, rank, score
    test_scores: pl.DataFrame  # user_id, item_id, score for every split = test pair


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
