"""causalrec: causal recommendations as Dagster software-defined assets."""

from causalrec_assets.definitions import defs

__all__ = ["defs"]
