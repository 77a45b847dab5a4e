"""The validate stage's plugin protocol: check one canonical table, say what is wrong and where."""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import polars as pl

from causalrec_assets.plugin_api import Plugin, PluginContext


@dataclass
class ExpectationOutcome:
    """One expectation's verdict, with what a person needs to find the defect."""

    expectation: str
    column: str | None
    success: bool
    unexpected_count: int = 0
    sample: list[Any] = field(default_factory=list)
    detail: str = ""

    def describe(self, table: str) -> str:
        where = f"{table}.{self.column}" if self.column else table
        text = f"{self.expectation} failed on {where}"
        if self.unexpected_count:
            text += f": {self.unexpected_count} bad row(s)"
        if self.sample:
            text += f", e.g. {self.sample[:5]!r}"
        if self.detail:
            text += f" ({self.detail})"
        return text


@dataclass
class ValidationOutcome:
    table: str
    row_count: int
    results: list[ExpectationOutcome]

    @property
    def success(self) -> bool:
        return all(r.success for r in self.results)

    @property
    def failures(self) -> list[ExpectationOutcome]:
        return [r for r in self.results if not r.success]

    def to_dict(self) -> dict[str, Any]:
        """Plain data (JSON when the samples are), to hand an outcome to another process."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ValidationOutcome:
        """The outcome ``to_dict`` gave (extra keys, such as a cache key, are ignored)."""
        results = [ExpectationOutcome(**r) for r in data["results"]]
        return cls(table=data["table"], row_count=int(data["row_count"]), results=results)

    def describe(self) -> str:
        if self.success:
            return f"{self.table}: all {len(self.results)} expectations passed on {self.row_count} rows"
        lines = [f.describe(self.table) for f in self.failures]
        return f"{self.table} ({self.row_count} rows): " + "; ".join(lines)


class ValidatePlugin(Plugin):
    """Checks one canonical table; ``tables`` holds the others for referential checks."""

    stage = "validate"

    @abstractmethod
    def validate(
        self, table: str, frame: pl.DataFrame, tables: Mapping[str, pl.DataFrame], context: PluginContext
    ) -> ValidationOutcome: ...
