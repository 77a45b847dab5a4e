"""Bootstrap edge stability's settings in a structure plugin's config (the resampling itself is
``causalrec_toolkit.stability``)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from causalrec_assets.plugin_api import PluginConfig
from causalrec_toolkit.stability import Stability, edge_stability, resample, resample_rows

__all__ = ["Stability", "StabilityConfig", "edge_stability", "resample", "resample_rows", "stability_config"]


class StabilityConfig(PluginConfig):
    """How the structure stage measures edge stability; a structure plugin's config extends it
    to let users set these (the stage uses the defaults for a config that does not)."""

    bootstrap: int = Field(
        default=20, ge=0, description="Resamples for edge stability in the structure stage (0: none)."
    )
    resampling: Literal["subsample", "bootstrap"] = Field(
        default="subsample",
        description=(
            "'subsample': a share of the rows without replacement (keeps CI tests calibrated); 'bootstrap': n rows "
            "with replacement (duplicates inflate chi-square and G statistics: spurious edges look stable)."
        ),
    )
    subsample_fraction: float = Field(default=0.5, gt=0.0, lt=1.0, description="Share of rows in each subsample.")
    unstable_below: float = Field(
        default=0.6,
        ge=0.0,
        le=1.0,
        description="Edges found in fewer than this fraction of resamples are flagged unstable.",
    )
    n_jobs: int = Field(
        default=2,
        ge=1,
        description="Processes for the bootstrap resamples (started only where they save more than they cost).",
    )


def stability_config(config: object) -> StabilityConfig:
    """The plugin config's stability settings, or the defaults when it has none."""
    return config if isinstance(config, StabilityConfig) else StabilityConfig()
