"""How the causal model's variables are made, shared by every asset that makes them."""

from __future__ import annotations

import dagster as dg
from pydantic import Field


class CausalVariablesResource(dg.ConfigurableResource):
    """One place for the variable settings, so the structure stage and the ranker that
    re-applies the encoder to new pairs always agree."""

    n_bins: int = Field(default=4, description="Quantile bins for numeric attributes and popularity.")
    max_levels: int = Field(default=12, description="Categorical attributes with more levels are left out.")
    n_topics: int = Field(default=0, description="Item topics (clusters of embeddings); 0 chooses by silhouette.")
    seed: int = Field(default=0, description="Seed of the topic clustering.")
    text_components: int = Field(
        default=8, ge=0, description="Principal components of the item text embeddings the estimators see."
    )
