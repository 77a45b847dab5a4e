"""The embed stage's plugin protocol: texts in, L2-normalised float32 vectors out."""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Sequence
from typing import Any

import numpy as np

from causalrec_assets.plugin_api import Plugin, PluginContext


class EmbedPlugin(Plugin):
    """Turns texts into L2-normalised float32 vectors."""

    stage = "embed"

    @abstractmethod
    def model_key(self) -> str:
        """A key that changes whenever the vectors for the same text could change."""

    @abstractmethod
    def embed(self, texts: Sequence[str], context: PluginContext) -> np.ndarray:
        """Return an array of shape (len(texts), dim), float32, rows of unit norm."""

    def describe_runtime(self) -> dict[str, Any]:
        """Facts for the materialization's metadata (provider, precision, …)."""
        return {}
