"""causalrec's settings: the one place that reads the environment.

Every ``CAUSALREC_*`` variable is read, checked and given its default here, once; the rest of
the code asks ``current_settings()`` (at definitions-load time: the executor, partitions,
the refutation mode) or the ``settings`` resource (in a step). A bad value fails when the
definitions load, naming the variable, before any run starts.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import dagster as dg
from pydantic import Field

EXECUTORS = ("auto", "multiprocess", "in_process", "dask")
COMPUTE_ENGINES = ("local", "dask")
PARTITION_MODES = ("", "none", "daily")
REFUTATION_MODES = ("warn", "block")
# Variables naming a place: blank-but-set (" ") is a typo, not "use the default" (it once ran the simulator
# and replaced every output), so it is refused.
PATH_VARIABLES = ("CAUSALREC_DATA", "CAUSALREC_STORAGE", "CAUSALREC_CACHE")
MAX_TEXT_CHARS = 10_000  # far beyond what an encoder reads (256 tokens), far below what blows memory up


class CausalrecSettings(dg.ConfigurableResource):
    """Where data comes from and goes to, and how runs execute (see README, "Settings")."""

    data: str = Field(default="", description="CAUSALREC_DATA: a dataset directory or built-in name ('': simulator).")
    storage: str = Field(default="", description="CAUSALREC_STORAGE: where outputs live ('': under DAGSTER_HOME).")
    cache: str = Field(default="", description="CAUSALREC_CACHE: model and embedding caches ('': ~/.cache/causalrec).")
    dagster_home: str = Field(default="", description="DAGSTER_HOME, for the default storage folder.")
    executor: str = Field(default="auto", description="CAUSALREC_EXECUTOR: " + ", ".join(EXECUTORS) + ".")
    dask_scheduler: str = Field(default="", description="CAUSALREC_DASK_SCHEDULER: an existing Dask scheduler.")
    dask_workers: int = Field(default=2, ge=1, description="CAUSALREC_DASK_WORKERS: workers of a local Dask cluster.")
    dask_memory: str = Field(default="4GB", description="CAUSALREC_DASK_MEMORY: memory limit of each local worker.")
    compute: str = Field(default="local", description="CAUSALREC_COMPUTE: where user shards run, 'local' or 'dask'.")
    shards: int = Field(default=8, ge=1, description="CAUSALREC_SHARDS: user-hash shards of data-parallel work.")
    partitions: str = Field(default="", description="CAUSALREC_PARTITIONS: '' or 'daily' (interactions by day).")
    refutation: str = Field(default="warn", description="CAUSALREC_REFUTATION: 'warn' or 'block'.")
    embed_shards: int = Field(default=8, ge=1, description="CAUSALREC_EMBED_SHARDS: shards of the embed job.")
    refresh_cron: str = Field(default="0 3 * * *", description="CAUSALREC_REFRESH_CRON: the refresh schedule.")
    storage_wait: int = Field(
        default=3600, ge=0, description="CAUSALREC_STORAGE_WAIT: seconds to wait for a run that holds the storage."
    )
    max_text_chars: int = Field(
        default=MAX_TEXT_CHARS,
        ge=1,
        description="CAUSALREC_MAX_TEXT_CHARS: item texts are cut to this length at ingest.",
    )

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> CausalrecSettings:
        """The settings the environment gives, each value checked with the variable named."""
        env = os.environ if env is None else env

        def text(name: str, default: str = "", lower: bool = False) -> str:
            raw = env.get(name, "")
            value = raw.strip()
            if raw and not value and name in PATH_VARIABLES:
                raise ValueError(f"{name}={raw!r} is blank: unset it for the default, or name a directory")
            value = value.lower() if lower else value
            return value or default

        def number(name: str, default: int, minimum: int = 1) -> int:
            raw = text(name)
            try:
                value = int(raw) if raw else default
            except ValueError:
                raise ValueError(f"{name}={raw!r} is not a whole number") from None
            if value < minimum:
                raise ValueError(f"{name}={raw!r} must be at least {minimum}")
            return value

        def choice(name: str, default: str, allowed: tuple[str, ...]) -> str:
            value = text(name, default, lower=True)
            if value not in allowed:
                raise ValueError(f"{name}={value!r} is not one of {', '.join(repr(a) for a in allowed)}")
            return value

        return cls(
            data=text("CAUSALREC_DATA"),
            storage=text("CAUSALREC_STORAGE"),
            cache=text("CAUSALREC_CACHE"),
            dagster_home=text("DAGSTER_HOME"),
            executor=choice("CAUSALREC_EXECUTOR", "auto", EXECUTORS),
            dask_scheduler=text("CAUSALREC_DASK_SCHEDULER"),
            dask_workers=number("CAUSALREC_DASK_WORKERS", 2),
            dask_memory=text("CAUSALREC_DASK_MEMORY", "4GB"),
            compute=choice("CAUSALREC_COMPUTE", "local", COMPUTE_ENGINES),
            shards=number("CAUSALREC_SHARDS", 8),
            partitions=choice("CAUSALREC_PARTITIONS", "", PARTITION_MODES),
            refutation=choice("CAUSALREC_REFUTATION", "warn", REFUTATION_MODES),
            embed_shards=number("CAUSALREC_EMBED_SHARDS", 8),
            refresh_cron=text("CAUSALREC_REFRESH_CRON", "0 3 * * *"),
            storage_wait=number("CAUSALREC_STORAGE_WAIT", 3600, minimum=0),
            max_text_chars=number("CAUSALREC_MAX_TEXT_CHARS", MAX_TEXT_CHARS),
        )

    @property
    def cache_dir(self) -> Path:
        return Path(self.cache or Path.home() / ".cache" / "causalrec").expanduser()

    @property
    def storage_dir(self) -> Path:
        """The storage folder (a local path; an object-store URL is handled by the IO manager)."""
        if self.storage:
            return Path(self.storage).expanduser()
        return Path(self.dagster_home or Path.home() / ".dagster").expanduser() / "causalrec_storage"


def current_settings() -> CausalrecSettings:
    """The settings of this process's environment, read now."""
    return CausalrecSettings.from_env()
