"""What an effects plugin receives, built from the upstream assets (plain, so the conformance
kit builds its inputs exactly as the stage does)."""

from __future__ import annotations

import polars as pl

from causalrec_assets.stages.effects.protocol import EffectInputs
from causalrec_toolkit.bayesnet import frame_to_network
from causalrec_toolkit.features import as_pair_features
from causalrec_toolkit.variables import OUTCOME, binarise_threshold


def effect_inputs(
    variables: pl.DataFrame, graph: dict, network: pl.DataFrame, features: pl.DataFrame | pl.LazyFrame
) -> EffectInputs:
    """What an effects plugin receives: the discrete variables and network, and the same
    training pairs as row-level features, plus the test slice's pairs (each collected on its
    own from a lazy ``features``: the whole table is never in memory at once)."""
    edges = [tuple(e) for e in graph["edges"]]
    train = features.lazy().filter(pl.col("split") == "train").collect()
    if train.height != variables.height:
        raise ValueError(
            f"pair_features has {train.height} training rows but causal_variables {variables.height}: "
            "materialize both from the same interactions"
        )
    threshold = binarise_threshold(train[OUTCOME])
    test = features.lazy().filter(pl.col("split") == "test").collect()
    return EffectInputs(
        variables=variables,
        edges=edges,
        network=frame_to_network(network, edges),
        features=as_pair_features(train, threshold),
        test=as_pair_features(test, threshold) if test.height else None,
    )
