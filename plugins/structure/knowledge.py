"""The typed config every built-in structure learner shares: the stage's knowledge and
bootstrap settings (``KnowledgeConfig``, ``StabilityConfig``), plus how awkward columns are coded.

The knowledge checks themselves are the structure stage's (``causalrec_assets.stages.structure.knowledge``)."""

from __future__ import annotations

from pydantic import Field

from causalrec_assets.plugin_api import (
    KnowledgeConfig,
    KnowledgeError,
    StabilityConfig,
    check_static,
    combine,
    search_space,
)

__all__ = ["KnowledgeError", "LearnerConfig", "check_static", "combine", "search_space"]


class LearnerConfig(KnowledgeConfig, StabilityConfig):
    """Settings every built-in structure learner shares: expert knowledge, awkward columns,
    bootstrap edge stability."""

    max_levels: int = Field(
        default=50,
        ge=2,
        description="A variable with more levels keeps its most frequent ones and lumps the rest into 'other'.",
    )
