"""The default ingest plugin: ``CAUSALREC_DATA`` (or ``data``) picks the dataset.

Unset or a built-in name (``simulator``) runs the simulator; a directory is read by the ingest
plugin for its layout (canonical, MovieLens-100K, Coat), found through the entry-point
registry like any other plugin, so the framework needs no special case for it.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from causalrec_assets.plugin_api import Dataset, IngestPlugin, PluginConfig, PluginContext, PluginError, get_registry
from causalrec_plugins.ingest.layout import PLUGIN_FOR_LAYOUT, detect_layout
from causalrec_plugins.ingest.simulator import SimulatorConfig
from causalrec_resources.settings import current_settings

BUILTIN_DATASETS = ("simulator",)


class AutoConfig(PluginConfig):
    data: str = Field(
        default="",
        description="A dataset directory or a built-in dataset name ('': $CAUSALREC_DATA; unset: the simulator).",
    )
    simulator: SimulatorConfig = Field(
        default_factory=SimulatorConfig, description="The simulator's parameters, when it is the dataset."
    )


class AutoIngest(IngestPlugin):
    """Reads the dataset ``CAUSALREC_DATA`` names with the plugin for its layout (default)."""

    Config = AutoConfig

    def chosen(self) -> IngestPlugin:
        """The ingest plugin that reads the dataset, configured for it."""
        cfg: AutoConfig = self.config  # type: ignore[assignment]
        data = cfg.data.strip() or current_settings().data
        registry = get_registry()
        if not data or data in BUILTIN_DATASETS:
            return registry.get("ingest", "simulator")(cfg.simulator)
        path = Path(data).expanduser()
        layout = detect_layout(path)
        if layout is None:
            raise PluginError(
                f"CAUSALREC_DATA={data!r} is neither a built-in dataset ({', '.join(BUILTIN_DATASETS)}) nor a "
                "directory in a known layout (users/items/interactions as CSV or Parquet, MovieLens-100K, Coat)"
            )
        cls = registry.get("ingest", PLUGIN_FOR_LAYOUT[layout])
        return cls(cls.Config(path=str(path)))

    def load(self, context: PluginContext) -> Dataset:
        plugin = self.chosen()
        context.log.info("ingest auto: reading with %s", type(plugin).__name__)
        return plugin.load(context)
