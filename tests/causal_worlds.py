"""Small simulated worlds turned into the effects and ranking stages' inputs, as the pipeline
builds them, with a stand-in text encoder that sees each item's category in its text."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from causalrec_assets.contracts import harmonise_id_types, test_rows, train_rows
from causalrec_assets.stages.effects.protocol import EffectInputs
from causalrec_assets.stages.ingest.protocol import Dataset
from causalrec_assets.stages.ranking.protocol import RankingInputs
from causalrec_plugins.ingest.scenarios import CATEGORY_WORDS, category_of, draw_world
from causalrec_toolkit.bayesnet import fit_network
from causalrec_toolkit.embeddings import embedding_frame, item_texts
from causalrec_toolkit.features import PairFeaturizer
from causalrec_toolkit.variables import OUTCOME, TREATMENT, VariableEncoder


def category_embeddings(items: pl.DataFrame, seed: int = 0, noise: float = 0.3) -> pl.DataFrame:
    """Unit vectors near one axis per category: what a good sentence encoder gives texts of
    the same kind (the real encoder is tested in test_embed_onnx.py)."""
    rng = np.random.default_rng(seed)
    names = list(CATEGORY_WORDS)
    texts = item_texts(items)
    axis = np.array([names.index(category_of(t)) if category_of(t) in names else 0 for t in texts])
    vectors = np.eye(16)[axis] + noise * rng.normal(size=(len(texts), 16))
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return embedding_frame(items["item_id"], texts, vectors.astype(np.float32), "test-category-16")


@dataclass
class Prepared:
    world: Dataset
    embeddings: pl.DataFrame
    topics: pl.DataFrame
    encoder: VariableEncoder
    featurizer: PairFeaturizer
    variables: pl.DataFrame

    def edges(self, confounders: list[str]) -> list[tuple[str, str]]:
        present = [c for c in confounders if c in self.variables.columns]
        return [(c, TREATMENT) for c in present] + [(c, OUTCOME) for c in present] + [(TREATMENT, OUTCOME)]

    def effect_inputs(self, confounders: list[str]) -> EffectInputs:
        edges = self.edges(confounders)
        log = self.world.interactions
        return EffectInputs(
            variables=self.variables,
            edges=edges,
            network=fit_network(self.variables, edges),
            features=self.featurizer.features(train_rows(log)),
            test=self.featurizer.features(test_rows(log)),
        )

    def ranking_inputs(self, confounders: list[str]) -> RankingInputs:
        edges = self.edges(confounders)
        return RankingInputs(
            users=self.world.users,
            items=self.world.items,
            interactions=self.world.interactions,
            item_embeddings=self.embeddings,
            user_embeddings=pl.DataFrame(),
            variables=self.variables,
            variable_encoder=self.encoder,
            edges=edges,
            network=fit_network(self.variables, edges),
            treatment_effects=pl.DataFrame(),
            pair_featurizer=self.featurizer,
        )


def prepare(world: Dataset, seed: int = 0) -> Prepared:
    users, items, interactions = harmonise_id_types(world.users, world.items, world.interactions)
    world = Dataset(users, items, interactions, world.truth, world.name)
    embeddings = category_embeddings(items, seed)
    topics = items.select(
        "item_id", pl.col("text").map_elements(category_of, return_dtype=pl.String).alias("item_topic")
    )
    train = train_rows(interactions)
    encoder = VariableEncoder().fit(users, items, train, topics, item_embeddings=embeddings)
    featurizer = PairFeaturizer().fit(users, items, train, embeddings, topics)
    return Prepared(world, embeddings, topics, encoder, featurizer, encoder.transform(train))


def scenario(
    name: str, seed: int, n_users: int = 400, n_items: int = 96, pairs: int = 30, test_pairs: int = 10
) -> Prepared:
    """A scenario world of ``causalrec_plugins.ingest.scenarios``, prepared."""
    return prepare(draw_world(name, seed, n_users, n_items, pairs, test_pairs), seed)


# The observed variables through which each scenario confounds (the text's category is the
# pipeline's ``item_topic``; a taste no table holds shows as ``affinity``).
CONFOUNDERS = {
    "interaction": ["age_group", "category", "price_tier"],
    "numeric": ["income", "price", "age"],
    "taste": ["affinity", "item_topic"],
    "hidden": ["age_group", "item_topic", "price_tier"],
    "null": ["age_group", "item_topic", "price_tier"],
    "negative": ["age_group", "item_topic", "price_tier"],
    "strong": ["age_group", "item_topic", "price_tier"],
    "continuous": ["age_group", "item_topic", "price_tier"],
}
