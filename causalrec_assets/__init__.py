"""causalrec: causal recommendations as Dagster software-defined assets.

``defs`` (the ``Definitions`` object) is built on first access, not at import: plugins import
``causalrec_assets.plugin_api``, and building ``defs`` discovers the plugins, so an eager
import would make every plugin module import itself half-initialised.
"""

import warnings
from typing import Any

# pgmpy 1.1 warns about its own deprecated modules on import; nothing here uses them.
warnings.filterwarnings("ignore", category=FutureWarning, module=r"pgmpy\..*")

from causalrec_assets import moved  # noqa: E402

moved.install()  # old paths of the modules that moved to causalrec_toolkit keep importing, with a warning

__all__ = ["CausalRecPipeline", "defs"]


def __getattr__(name: str) -> Any:
    if name == "defs":
        from causalrec_assets.definitions import defs

        return defs
    if name == "CausalRecPipeline":  # the Dagster Component (type: causalrec_assets.CausalRecPipeline)
        from causalrec_assets.component import CausalRecPipeline

        return CausalRecPipeline
    raise AttributeError(f"module 'causalrec_assets' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
