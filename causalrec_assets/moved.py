"""Old import paths of modules that moved to the toolkit (plugin API 1.7): importing one still
works, gives the toolkit's module itself (so classes, ``isinstance`` and pickles written under
the old path all agree) and warns with PluginAPIDeprecationWarning. The aliases go in 2.0."""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import sys
import types
import warnings

MOVED: dict[str, str] = {
    f"causalrec_assets.{old}": f"causalrec_toolkit.{new}"
    for old, new in {
        "sampling": "sampling",
        "topics": "topics",
        "variables": "variables",
        "features": "features",
        "bayesnet": "bayesnet",
        "evaluation": "evaluation",
        "embedding_store": "embedding_store",
        "graph_picture": "graph_picture",
        "stages.structure.counts": "counts",
        "stages.effects.refutation": "refutation",
        "candidates": "rankers",
        "embeddings": "embeddings",
        "encoding": "encoding",
    }.items()
}
SINCE, REMOVED_IN = "1.7", "2.0"


class MovedModules(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Resolves an old path in ``MOVED`` to the module that now holds it."""

    def find_spec(
        self, fullname: str, path: object = None, target: types.ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        return importlib.util.spec_from_loader(fullname, self) if fullname in MOVED else None

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> None:
        return None  # the default module; exec_module swaps it for the real one

    def exec_module(self, module: types.ModuleType) -> None:
        from causalrec_assets.plugin_api import PluginAPIDeprecationWarning

        new = MOVED[module.__name__]
        warnings.warn(
            f"{module.__name__} moved to {new} in plugin API {SINCE}; the old name goes in {REMOVED_IN}",
            PluginAPIDeprecationWarning,
            stacklevel=2,
        )
        sys.modules[module.__name__] = importlib.import_module(new)


def install() -> None:
    """Put the finder on ``sys.meta_path`` once."""
    if not any(isinstance(f, MovedModules) for f in sys.meta_path):
        sys.meta_path.append(MovedModules())
