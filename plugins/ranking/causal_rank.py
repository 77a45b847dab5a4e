"""The default ranker: by estimated uplift where the log has unexposed outcomes, else by
debiased relevance E[outcome | do(shown)] (missing-not-at-random rating data).

Uplift (see ``uplift_rank``): EconML's DR learner on each pair's personal features (the
user's taste, the item's text, attributes) or the Bayesian network's do-query. Relevance
(see ``relevance_rank``): a matrix factorisation with user and item side features
(attributes, item text embeddings) trained with inverse-propensity or doubly robust
weights, chosen on a validation split of the training log.
"""

from __future__ import annotations

from causalrec_assets.candidates import test_pairs, top_k, unseen_pairs
from causalrec_assets.plugin_api import PluginContext
from causalrec_assets.stages.ranking.protocol import RankingInputs, RankingOutput, RankingPlugin
from causalrec_plugins.ranking.relevance_rank import RelevanceParams, fit_relevance
from causalrec_plugins.ranking.uplift_rank import UpliftConfig, has_unexposed_outcomes, recommend, uplift_scorer


class CausalRankingConfig(RelevanceParams, UpliftConfig):
    """The relevance model's parameters (rating data) and the uplift model's (uplift data)."""


class CausalRanking(RankingPlugin):
    """Uplift ranking (uplift data) or debiased relevance ranking (rating data)."""

    Config = CausalRankingConfig

    def rank(self, inputs: RankingInputs, context: PluginContext) -> RankingOutput:
        cfg: CausalRankingConfig = self.config  # type: ignore[assignment]
        if has_unexposed_outcomes(inputs.interactions):
            score = uplift_scorer(inputs, cfg)
            recommendations = recommend(score, inputs, cfg, context)
        else:
            candidates = unseen_pairs(inputs.users, inputs.items, inputs.interactions)
            context.log.info("rating data: debiased relevance ranking of %d candidate pairs", candidates.height)
            score, _ = fit_relevance(inputs, cfg, context)
            recommendations = top_k(score(candidates), cfg.k)
        return RankingOutput(recommendations=recommendations, test_scores=score(test_pairs(inputs.interactions)))
