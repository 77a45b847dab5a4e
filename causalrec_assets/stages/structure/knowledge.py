"""Expert knowledge from a structure plugin's config (the logic is ``causalrec_toolkit.knowledge``).

``KnowledgeConfig`` is the typed config a plugin may extend so users can add tiers, required and
forbidden edges; defects that need no data fail when the config is read.
"""

from __future__ import annotations

from pydantic import Field, model_validator

from causalrec_assets.plugin_api import PluginConfig
from causalrec_toolkit.knowledge import (
    Edge,
    Knowledge,
    KnowledgeError,
    check_static,
    combine,
    edge_pair,
    search_space,
    stage_knowledge,
)

__all__ = [
    "Edge",
    "Knowledge",
    "KnowledgeConfig",
    "KnowledgeError",
    "check_static",
    "combine",
    "config_knowledge",
    "search_space",
    "stage_knowledge",
]


class KnowledgeConfig(PluginConfig):
    """Expert knowledge from a structure plugin's config: tiers, required and forbidden edges."""

    tiers: list[list[str]] = Field(
        default_factory=list,
        description=(
            "Tiers of variables, earliest first: nothing in a later tier may cause a variable in an earlier one. "
            "Combined with the structure stage's own tiers (attributes → exposure → outcome)."
        ),
    )
    required_edges: list[list[str]] = Field(
        default_factory=list, description='Edges that must be in the graph, as [cause, effect] pairs: [["a", "b"]].'
    )
    forbidden_edges: list[list[str]] = Field(
        default_factory=list, description="Edges that must not be in the graph, as [cause, effect] pairs."
    )

    @model_validator(mode="after")
    def _knowledge_is_consistent(self) -> KnowledgeConfig:
        check_static(self.knowledge())
        return self

    def knowledge(self) -> Knowledge:
        return Knowledge(
            tiers=[list(t) for t in self.tiers],
            required=[edge_pair(e, "required_edges") for e in self.required_edges],
            forbidden=[edge_pair(e, "forbidden_edges") for e in self.forbidden_edges],
        )


def config_knowledge(config: object) -> Knowledge:
    """The knowledge a plugin's config carries (none unless it extends ``KnowledgeConfig``)."""
    return config.knowledge() if isinstance(config, KnowledgeConfig) else Knowledge()
