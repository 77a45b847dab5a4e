"""The small inputs the conformance kit runs every check on: the simulator's small world, and
what each stage would receive from it, built as the stages build it."""

from __future__ import annotations

import logging
import re
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property, lru_cache
from pathlib import Path

import numpy as np
import polars as pl

from causalrec_assets.contracts import harmonise_id_types, train_rows
from causalrec_assets.plugin_api import PluginContext
from causalrec_assets.registry import get_registry
from causalrec_assets.stages.effects.inputs import effect_inputs
from causalrec_assets.stages.effects.protocol import EFFECT_COLUMNS, EffectInputs
from causalrec_assets.stages.ingest.protocol import Dataset
from causalrec_assets.stages.ranking.inputs import ranking_inputs
from causalrec_assets.stages.ranking.protocol import RankingInputs
from causalrec_assets.stages.structure.knowledge import stage_knowledge
from causalrec_assets.stages.structure.protocol import Knowledge
from causalrec_toolkit.bayesnet import cpds_to_frame, fit_network
from causalrec_toolkit.embeddings import embedding_frame, item_texts, user_profiles
from causalrec_toolkit.encoding import EncodedLog, encode_log
from causalrec_toolkit.features import PairFeaturizer
from causalrec_toolkit.topics import item_topics
from causalrec_toolkit.variables import OUTCOME, TREATMENT, VariableEncoder

# The small world every check runs on: big enough for every stage to have something to learn
# (both exposure arms, a randomized test slice), small enough for a plugin's test suite.
WORLD = dict(n_users=60, n_items=24, n_topics=3, pairs_per_user=10, test_pairs_per_user=4)


# ------------------------------------------------------------------ small generated inputs


@lru_cache(maxsize=4)
def small_world(seed: int = 0) -> Dataset:
    """The simulator's small world for ``seed``, as the ingest stage stores it. The simulator is
    reached through the entry-point registry, like any plugin: the framework imports no plugin."""
    cls = get_registry().get("ingest", "simulator")
    context = PluginContext(log=logging.getLogger("causalrec.conformance.world"), seed=seed)
    data = cls(cls.Config(seed=seed, **WORLD)).load(context)  # type: ignore[attr-defined]
    users, items, interactions = harmonise_id_types(data.users, data.items, data.interactions)
    return Dataset(users=users, items=items, interactions=interactions, truth=data.truth, name=f"kit-world-{seed}")


def hashed_embeddings(texts: Sequence[str], dim: int = 32) -> np.ndarray:
    """Cheap, deterministic text vectors (a hashed bag of words, L2-normalised): stand-ins for
    a real encoder's output wherever a stage only needs item embeddings as input."""
    out = np.zeros((len(texts), dim), dtype=np.float32)
    for row, text in enumerate(texts):
        for token in re.findall(r"\w+", str(text).lower()):
            out[row, zlib.crc32(token.encode()) % dim] += 1.0
    norms = np.linalg.norm(out, axis=1, keepdims=True)
    out[norms[:, 0] == 0, 0] = 1.0
    return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)


@dataclass
class StageInputs:
    """Everything the stages downstream of ingest receive, built for the small world by the
    stages' own builders (``encode_log``, ``stage_knowledge``, ``effect_inputs``,
    ``ranking_inputs``): only the item embeddings are stand-ins and the graph is the world's
    true one, so each stage's check does not depend on another plugin."""

    world: Dataset
    item_embeddings: pl.DataFrame
    user_embeddings: pl.DataFrame
    item_topics: pl.DataFrame
    encoded: EncodedLog
    knowledge: Knowledge
    edges: list[tuple[str, str]]

    @property
    def encoder(self) -> VariableEncoder:
        return self.encoded.encoding.encoder

    @property
    def variables(self) -> pl.DataFrame:
        return self.encoded.variables

    def pair_featurizer(self) -> PairFeaturizer:
        """Row-level features of pairs, fitted on the training log as the pipeline fits them."""
        return self.encoded.encoding.featurizer

    @cached_property
    def network(self) -> pl.DataFrame:
        """The network fitted on the true graph, as the ``bayesian_network`` asset stores it
        (fitted once: the effects and ranking checks build their inputs many times)."""
        return cpds_to_frame(fit_network(self.variables, self.edges))

    def effect_inputs(self) -> EffectInputs:
        """As the effects stage builds them: the discrete table, the network, and the same
        training pairs as row-level features, plus the test slice's pairs."""
        graph = {"edges": [list(e) for e in self.edges]}
        return effect_inputs(self.variables, graph, self.network, self.encoded.features)

    def ranking_inputs(self) -> RankingInputs:
        """As the ranking stage builds them, with the naive difference as the effects table."""
        y = self.variables[OUTCOME].cast(pl.Int64)
        exposed = self.variables[TREATMENT] == "1"
        naive = float(y.filter(exposed).mean() - y.filter(~exposed).mean())  # type: ignore[operator]
        effects = pl.DataFrame(
            [[TREATMENT, OUTCOME, "ATE", "naive", naive, float("nan"), float("nan")]],
            schema=EFFECT_COLUMNS,
            orient="row",
        )
        return ranking_inputs(
            self.world.interactions,
            self.user_embeddings,
            self.encoded.encoding,
            self.variables,
            self.network,
            effects,
        )


@lru_cache(maxsize=4)
def stage_inputs(seed: int = 0) -> StageInputs:
    """The small world of ``seed`` turned into every stage's inputs (see ``build_stage_inputs``)."""
    return build_stage_inputs(small_world(seed), seed)


def build_stage_inputs(world: Dataset, seed: int = 0) -> StageInputs:
    """A world turned into every stage's inputs, as the pipeline builds them: hashed item
    embeddings, user profiles, topics, the encoded log, the stage's knowledge (attributes
    before exposure before outcome), and the world's true graph (else exposure -> outcome)."""
    texts = item_texts(world.items)
    items_emb = embedding_frame(world.items["item_id"], texts, hashed_embeddings(texts), "kit-hashed-32")
    users_emb, _ = user_profiles(train_rows(world.interactions), items_emb)
    topics = item_topics(items_emb, k=min(WORLD["n_topics"], world.items.height), seed=seed)
    encoded = encode_log(world.users, world.items, world.interactions, topics, items_emb)
    variables = encoded.variables
    truth = world.truth.edges if world.truth is not None else [(TREATMENT, OUTCOME)]
    edges = [(a, b) for a, b in truth if a in variables.columns and b in variables.columns]
    knowledge = stage_knowledge(variables)
    return StageInputs(world, items_emb, users_emb, topics, encoded, knowledge, edges)


def write_canonical(data: Dataset, directory: Path) -> Path:
    """The dataset as a canonical directory of CSV files (docs/plugins.md, "ingest")."""
    directory.mkdir(parents=True, exist_ok=True)
    for name in ("users", "items", "interactions"):
        getattr(data, name).write_csv(directory / f"{name}.csv")
    return directory


