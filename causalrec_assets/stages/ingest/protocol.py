"""The ingest stage's plugin protocol: read a dataset into the three canonical tables."""

from __future__ import annotations

from abc import abstractmethod
from dataclasses import dataclass
from typing import Any

import polars as pl

from causalrec_assets.plugin_api import Plugin, PluginContext


@dataclass
class Dataset:
    """The three canonical tables (docs/plugins.md, "ingest") and, for simulated worlds, their truth.

    Since plugin API 1.5 ``interactions`` may be a ``pl.LazyFrame`` (a scan): the stage then
    applies the ingest rules and writes the log to storage streaming, never whole in memory."""

    users: pl.DataFrame
    items: pl.DataFrame
    interactions: pl.DataFrame | pl.LazyFrame
    truth: GroundTruth | None = None
    name: str = "dataset"


@dataclass
class GroundTruth:
    """What a simulator knows and an estimator must recover."""

    edges: list[tuple[str, str]]
    nodes: list[str]
    ate: float
    confounders: list[str]
    uplift: pl.DataFrame  # user_id, item_id, p0, p1, uplift for every (user, item) pair

    def as_json(self) -> dict[str, Any]:
        return {
            "nodes": list(self.nodes),
            "edges": [list(e) for e in self.edges],
            "ate": float(self.ate),
            "confounders": list(self.confounders),
        }


class IngestPlugin(Plugin):
    """Reads a dataset into the canonical tables."""

    stage = "ingest"

    @abstractmethod
    def load(self, context: PluginContext) -> Dataset: ...
