"""The embed stage's plugin protocol: texts in, L2-normalised float32 vectors out."""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from causalrec_assets.plugin_api import Plugin, PluginContext

CHUNK = 8192  # texts per ``embed`` call when a plugin does not stream


class EmbedPlugin(Plugin):
    """Turns texts into L2-normalised float32 vectors.

    Required: ``model_key`` and ``embed``. Optional (since plugin API 1.2 declared here; the
    framework has called them since 1.0): ``iter_embed``, to stream vectors in batches of the
    plugin's choosing (the default calls ``embed`` on chunks of ``CHUNK`` texts), and
    ``last_tokens``, the tokens the last call encoded (for the tokens-per-second metadata; 0
    when the plugin does not count)."""

    stage = "embed"
    last_tokens: int = 0

    @abstractmethod
    def model_key(self) -> str:
        """A key that changes whenever the vectors for the same text could change."""

    @abstractmethod
    def embed(self, texts: Sequence[str], context: PluginContext) -> np.ndarray:
        """Return an array of shape (len(texts), dim), float32, rows of unit norm."""

    def describe_runtime(self) -> dict[str, Any]:
        """Facts for the materialization's metadata (provider, precision, …)."""
        return {}

    def iter_embed(self, texts: Sequence[str], context: PluginContext) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """``(rows, vectors)`` pairs covering every text once, ``rows`` indexing ``texts``: the
        framework writes each batch into the store as it comes, so memory stays bounded."""
        for start in range(0, len(texts), CHUNK):
            vectors = np.asarray(self.embed(texts[start : start + CHUNK], context), dtype=np.float32)
            yield np.arange(start, start + len(vectors)), vectors
