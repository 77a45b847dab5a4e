"""Where assets live: one file per asset under the storage directory, written atomically.

``<asset>.parquet`` through Polars for tables, ``<asset>.json`` for the few assets that are
documents (the causal graph, the simulator's truth), ``<asset>.pkl`` for the one fitted
object (``variable_encoding``, read back by the steps of the same code). Built on Dagster's ``UPathIOManager``
(``dagster-polars`` cannot read inputs under Polars 2).
"""

from __future__ import annotations

import json
import os
import pickle
import uuid
from pathlib import Path
from typing import Any

import dagster as dg
import polars as pl
from upath import UPath

from causalrec_resources.settings import current_settings

JSON_ASSETS: frozenset[str] = frozenset({"causal_graph", "ground_truth"})
PICKLED_ASSETS: frozenset[str] = frozenset({"variable_encoding"})


def storage_dir(explicit: str = "") -> Path:
    """``explicit``, else ``CAUSALREC_STORAGE``, else a folder under the Dagster home."""
    return Path(explicit).expanduser() if explicit else current_settings().storage_dir


def _atomic_write(path: UPath, write: Any) -> None:
    """Write through a temporary sibling, then rename: readers never see half a file and a
    failure leaves the previous file as it was."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        write(tmp)
        if getattr(path, "protocol", "") in ("", "file", "local"):
            os.replace(str(tmp.path), str(path.path))
        else:
            path.fs.mv(tmp.path, path.path)
    finally:
        if tmp.exists():
            tmp.unlink()


def _suffix_for(path: UPath) -> str:
    """The file suffix of the asset at ``path`` (partitioned assets are folders of files)."""
    names = {path.name, *path.parts[-3:-1]}
    if names & JSON_ASSETS:
        return ".json"
    return ".pkl" if names & PICKLED_ASSETS else ".parquet"


class PolarsJsonUPathIOManager(dg.UPathIOManager):
    """Polars DataFrames as Parquet, dicts as JSON."""

    extension = None

    def _with_extension(self, path: UPath) -> UPath:
        return path.with_suffix(path.suffix + _suffix_for(path))

    def dump_to_path(self, context: dg.OutputContext, obj: Any, path: UPath) -> None:
        if isinstance(obj, dict) and path.suffix == ".json":
            text = json.dumps(obj, indent=2, default=str)
            _atomic_write(path, lambda p: p.write_text(text))
        elif path.suffix == ".pkl":
            data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
            _atomic_write(path, lambda p: p.write_bytes(data))
        elif isinstance(obj, pl.DataFrame) and path.suffix == ".parquet":
            _atomic_write(path, lambda p: obj.write_parquet(str(p.path) if p.protocol in ("", "file") else p))
        else:
            expected = "a dict (stored as JSON)" if path.suffix == ".json" else "a polars DataFrame (stored as Parquet)"
            raise TypeError(
                f"asset {path.stem!r} must be {expected}, got {type(obj).__name__}; documents are stored as JSON "
                f"only for the assets {sorted(JSON_ASSETS)}"
            )

    def load_from_path(self, context: dg.InputContext, path: UPath) -> Any:
        if path.suffix == ".json":
            return json.loads(path.read_text())
        if path.suffix == ".pkl":
            return pickle.loads(path.read_bytes())
        return pl.read_parquet(str(path.path) if path.protocol in ("", "file") else path)

    def handle_output(self, context: dg.OutputContext, obj: Any) -> None:
        """A single-run backfill returns ``{partition_key: table}``: one file per partition."""
        if context.has_asset_partitions and len(context.asset_partition_keys) > 1:
            if not isinstance(obj, dict) or set(obj) != set(context.asset_partition_keys):
                raise TypeError("a run over several partitions must return {partition_key: table} for each of them")
            for key, path in self._get_paths_for_partitions(context).items():
                self.make_directory(path.parent)
                self.dump_to_path(context=context, obj=obj[key], path=path)
            context.add_output_metadata(
                {"partitions": len(obj), "dagster/row_count": sum(v.height for v in obj.values())}
            )
            return
        super().handle_output(context, obj)

    def load_input(self, context: dg.InputContext) -> Any:
        """An unpartitioned asset reading every partition of a table gets them as one table."""
        value = super().load_input(context)
        if isinstance(value, dict) and value and all(isinstance(v, pl.DataFrame) for v in value.values()):
            return pl.concat([value[k] for k in sorted(value)], how="diagonal_relaxed")
        return value

    def get_metadata(self, context: dg.OutputContext, obj: Any) -> dict[str, Any]:
        if isinstance(obj, pl.DataFrame):
            return {"dagster/row_count": obj.height, "columns": ", ".join(obj.columns)}
        return {}


class CausalrecIOManager(dg.ConfigurableIOManagerFactory):
    """Stores every asset under ``base_dir`` (empty: ``CAUSALREC_STORAGE`` or the Dagster home)."""

    base_dir: str = ""

    def create_io_manager(self, context: dg.InitResourceContext) -> PolarsJsonUPathIOManager:
        configured = self.base_dir or current_settings().storage
        if "://" in configured:  # an object store (s3://, gs://, …) through fsspec
            return PolarsJsonUPathIOManager(base_path=UPath(configured))
        root = storage_dir(self.base_dir)
        root.mkdir(parents=True, exist_ok=True)
        return PolarsJsonUPathIOManager(base_path=UPath(root))


@dg.input_manager(required_resource_keys={"io_manager"})
def stored_asset_loader(context: dg.InputContext) -> Any:
    """An op input that is a stored asset (``In(metadata={"asset": "items"}, ...)``), read
    through the IO manager, so a plain op job reads the same files as the asset jobs."""
    key = dg.AssetKey.from_user_string(context.definition_metadata["asset"])
    return context.resources.io_manager.load_input(dg.build_input_context(asset_key=key))
