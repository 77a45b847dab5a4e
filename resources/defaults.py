"""Every resource the causalrec assets and jobs ask for, with their defaults: what the code
location registers, and what a test or a user's own ``dg.materialize`` can pass as is."""

from __future__ import annotations

import functools
from typing import Any

from causalrec_resources.compute import ComputeResource
from causalrec_resources.onnx_runtime import OnnxRuntimeResource
from causalrec_resources.settings import current_settings
from causalrec_resources.storage import CausalrecIOManager, stored_asset_loader
from causalrec_resources.variables import CausalVariablesResource


@functools.cache
def shared_resources() -> dict[str, Any]:
    """The resources every pipeline of a project shares, as one object each: Dagster merges the
    definitions of several pipelines only when a key holds the very same object."""
    return {
        "variable_settings": CausalVariablesResource(),
        "compute": ComputeResource(),
        "onnx_runtime": OnnxRuntimeResource(),
        "stored_asset_loader": stored_asset_loader,
    }


def default_resources(base_dir: str = "", **overrides: Any) -> dict[str, Any]:
    """The resources by key; ``base_dir`` is the storage folder ('' : the settings' storage)."""
    return {
        "io_manager": CausalrecIOManager(base_dir=base_dir),
        **shared_resources(),
        "settings": current_settings(),
        **overrides,
    }
