"""The ingest stage's conformance checks: ``load()`` returns the three canonical tables.

A plugin whose Config has a ``path`` field is pointed at a canonical CSV copy of the kit's small
world (when no path is given) and tried on an empty and on a damaged directory; one without a
``path`` reads no files, so those two checks are skipped.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import polars as pl

from causalrec_assets.contracts import (
    KEY_COLUMNS,
    REQUIRED_COLUMNS,
    SPLITS,
    collected,
    harmonise_id_types,
    train_rows,
)
from causalrec_assets.plugin_api import PluginConfig
from causalrec_assets.stages.conformance import Kit
from causalrec_assets.stages.ingest.protocol import Dataset
from causalrec_assets.stages.kit_frames import CheckSkipped, Dtype, check_frame, check_no_nulls, expect_error, fail
from causalrec_assets.stages.kit_inputs import write_canonical

STAGE = "ingest"

MAX_DAMAGED_FILES = 6  # malformed_input damages at most this many files, largest first

ID = Dtype("strings or integers", lambda d: d == pl.String or d.is_integer())
DTYPES: dict[str, dict[str, Dtype]] = {
    "users": {"user_id": ID},
    "items": {"item_id": ID, "text": Dtype("strings", lambda d: d == pl.String)},
    "interactions": {
        "user_id": ID,
        "item_id": ID,
        "exposure": Dtype("integer 0/1", lambda d: d.is_integer() or d == pl.Boolean),
        "outcome": Dtype("numeric", lambda d: d.is_numeric() or d == pl.Boolean),
        "split": Dtype("strings", lambda d: d in (pl.String, pl.Categorical) or isinstance(d, pl.Enum)),
        "timestamp": Dtype("a datetime, number or text", lambda d: d.is_temporal() or d.is_numeric() or d == pl.String),
    },
}
"""The dtypes each canonical table's columns may have (optional columns only when present)."""


def reads_files(kit: Kit) -> bool:
    """Whether the plugin reads a directory: its Config has a ``path`` field (a convention of
    the canonical-files plugins, not part of the protocol)."""
    return "path" in kit.cls.Config.model_fields


def require_files(kit: Kit) -> None:
    if not reads_files(kit):
        raise CheckSkipped("the plugin reads no files (its Config has no `path`)")


def config(kit: Kit) -> PluginConfig:
    """The kit's config, pointed at a canonical copy of the small world when the plugin reads a
    ``path`` and none was given."""

    def build() -> PluginConfig:
        if reads_files(kit) and not str(getattr(kit.config, "path", "") or ""):
            return kit.with_config(path=str(write_canonical(kit.world, kit.tmpdir("dataset"))))
        return kit.config

    return kit.remember("ingest-config", build)


def run(kit: Kit) -> Dataset:
    plugin = kit.make(config(kit))
    return kit.call("load()", lambda: plugin.load(kit.context()))


def same(a: Dataset, b: Dataset) -> str | None:
    for name in REQUIRED_COLUMNS:
        if not collected(getattr(a, name)).equals(collected(getattr(b, name))):
            return f"the {name} tables"
    return None


def tables(kit: Kit, dtypes: bool = False) -> dict[str, pl.DataFrame]:
    """The three tables of the regular run, checked to hold their required columns."""
    data = kit.main_or_fail()
    if not isinstance(data, Dataset):
        fail(f"load() must return causalrec_assets.plugin_api.Dataset, got {type(data).__name__}")
    return {
        t: check_frame(collected(getattr(data, t)), t, cols, exact=False, dtypes=DTYPES[t] if dtypes else None)
        for t, cols in REQUIRED_COLUMNS.items()
    }


def check_output_schema(kit: Kit) -> str:
    found = tables(kit)
    for table, frame in found.items():
        if frame.is_empty():
            fail(f"{table} is empty")
    return ", ".join(f"{t}: {f.height} rows" for t, f in found.items())


def check_dtypes(kit: Kit) -> str:
    tables(kit, dtypes=True)
    return ""


def check_row_invariants(kit: Kit) -> str:
    users, items, interactions = harmonise_id_types(*tables(kit).values())
    for table, frame in (("users", users), ("items", items)):
        key = KEY_COLUMNS[table]
        check_no_nulls(frame, table, [key])
        dupes = frame.filter(frame[key].is_duplicated())[key].unique().to_list()
        if dupes:
            fail(f"{table}.{key} is not unique, e.g. {dupes[:3]!r}")
    check_no_nulls(interactions, "interactions", REQUIRED_COLUMNS["interactions"])
    bad = interactions.filter(~pl.col("exposure").cast(pl.Int64).is_in([0, 1]))
    if bad.height:
        fail(f"interactions.exposure must be 0 or 1, found {bad['exposure'].unique().to_list()[:5]!r}")
    if "split" in interactions.columns:
        odd = set(interactions["split"].cast(pl.String).unique().to_list()) - set(SPLITS)
        if odd:
            fail(f"interactions.split must be one of {', '.join(SPLITS)}, found {sorted(map(str, odd))!r}")
    if train_rows(interactions).is_empty():
        fail("interactions has no training rows (split absent or 'train')")
    for col, owner, frame in (("user_id", "users", users), ("item_id", "items", items)):
        unknown = interactions.join(frame.select(col), on=col, how="anti")[col].unique().to_list()
        if unknown:
            fail(f"interactions.{col} has {len(unknown)} id(s) not in {owner}, e.g. {unknown[:3]!r}")
    return ""


def check_empty_input(kit: Kit) -> str:
    require_files(kit)
    empty = kit.tmpdir("empty")
    empty.mkdir(parents=True)
    plugin = kit.make(kit.with_config(path=str(empty)))
    return expect_error("load() on an empty directory", lambda: plugin.load(kit.context()), [str(empty), empty.name])


def check_malformed_input(kit: Kit) -> str:
    require_files(kit)
    good = kit.main_or_fail()
    source = Path(str(config(kit).path))  # type: ignore[attr-defined]
    files = sorted((p for p in source.rglob("*") if p.is_file()), key=lambda p: (-p.stat().st_size, str(p)))
    refused: list[str] = []
    for original in files[:MAX_DAMAGED_FILES]:
        # Damage one file at a time: the plugin must refuse it, naming the file or its table,
        # or (a file it does not read) return exactly the undamaged data.
        broken = kit.tmpdir("malformed")
        shutil.copytree(source, broken)
        victim = broken / original.relative_to(source)
        victim.write_bytes(b"\x00\xff\xfe\x89garbage\x00\x01" * 512)
        plugin = kit.make(kit.cls.Config(**{**config(kit).model_dump(), "path": str(broken)}))
        try:
            data = plugin.load(kit.context())
        except Exception as exc:
            if not any(n in str(exc) for n in (victim.name, victim.stem, *REQUIRED_COLUMNS)):
                fail(
                    f"load() with a damaged {victim.name} raised without naming the file or its table: {str(exc)[:200]}"
                )
            refused.append(victim.name)
            continue
        if same(good, data) is not None:
            fail(f"load() with a damaged {victim.name} returned other data instead of raising an error naming it")
    if not refused:
        raise CheckSkipped(f"damaging each of {len(files[:MAX_DAMAGED_FILES])} file(s) changed nothing")
    return f"damaged {', '.join(refused)}: refused, naming it"
