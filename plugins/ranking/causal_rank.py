"""The default ranker: by estimated uplift where the log has unexposed outcomes, else by
debiased relevance E[outcome | do(shown)] (missing-not-at-random rating data).

Uplift (see ``uplift_rank``): EconML's DR learner on each pair's personal features (the
user's taste, the item's text, attributes) or the Bayesian network's do-query. Relevance
(see ``relevance_rank``): a matrix factorisation with user and item side features
(attributes, item text embeddings) trained with inverse-propensity or doubly robust
weights, chosen on a validation split of the training log.
"""

from __future__ import annotations

from causalrec_assets.plugin_api import PluginContext, Ranker, RankingInputs, RankingPlugin, ScoredRanker
from causalrec_plugins.ranking.relevance_rank import RelevanceParams, fit_relevance
from causalrec_plugins.ranking.uplift_rank import UpliftConfig, has_unexposed_outcomes, uplift_ranker, uplift_scorer


class CausalRankingConfig(RelevanceParams, UpliftConfig):
    """The relevance model's parameters (rating data) and the uplift model's (uplift data)."""


class CausalRanking(RankingPlugin):
    """Uplift ranking (uplift data) or debiased relevance ranking (rating data)."""

    Config = CausalRankingConfig

    def fit(self, inputs: RankingInputs, context: PluginContext) -> Ranker:
        cfg: CausalRankingConfig = self.config  # type: ignore[assignment]
        if has_unexposed_outcomes(inputs.interactions):
            score, profiles = uplift_scorer(inputs, cfg)
            return uplift_ranker(score, inputs, cfg, context, profiles)
        context.log.info("rating data: debiased relevance ranking of every unseen item")
        score, _ = fit_relevance(inputs, cfg, context)
        return ScoredRanker(score, inputs.items.select("item_id"), cfg.k)
