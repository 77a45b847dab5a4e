"""What a ranking plugin receives, built from the upstream assets (plain, so the conformance
kit builds its inputs exactly as the stage does)."""

from __future__ import annotations

import polars as pl

from causalrec_assets.contracts import with_default_split
from causalrec_assets.stages.ranking.protocol import RankingInputs
from causalrec_toolkit.bayesnet import frame_to_network, network_edges
from causalrec_toolkit.encoding import VariableEncoding, check_encoding


def ranking_inputs(
    interactions: pl.DataFrame,
    user_embeddings: pl.DataFrame,
    encoding: VariableEncoding,
    variables: pl.DataFrame,
    network: pl.DataFrame,
    treatment_effects: pl.DataFrame,
) -> RankingInputs:
    """What a ranking plugin receives, from the upstream assets: the users, items and item
    embeddings are those the encodings were fitted on, the graph is the network's; nothing is
    refitted or recomputed."""
    encoding = check_encoding(encoding)
    edges = network_edges(network)
    return RankingInputs(
        users=encoding.users,
        items=encoding.items,
        interactions=with_default_split(interactions),
        item_embeddings=encoding.item_embeddings,
        user_embeddings=user_embeddings,
        variables=variables,
        variable_encoder=encoding.encoder,
        edges=edges,
        network=frame_to_network(network, edges),
        treatment_effects=treatment_effects,
        pair_featurizer=encoding.featurizer,
    )
