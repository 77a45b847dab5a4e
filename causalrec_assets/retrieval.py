"""Deprecated since plugin API 1.7, goes in 2.0: candidate retrieval is ``causalrec_toolkit.retrieval``
and ``CandidateConfig`` is in the plugin API (``causalrec_assets.plugin_api``)."""

import warnings

from causalrec_assets.plugin_api import PluginAPIDeprecationWarning
from causalrec_assets.stages.ranking.protocol import CandidateConfig as CandidateConfig
from causalrec_toolkit.retrieval import *  # noqa: F403

warnings.warn(
    "causalrec_assets.retrieval moved to causalrec_toolkit.retrieval (CandidateConfig: causalrec_assets.plugin_api)"
    " in plugin API 1.7; the old name goes in 2.0",
    PluginAPIDeprecationWarning,
    stacklevel=2,
)
