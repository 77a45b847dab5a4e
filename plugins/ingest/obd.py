"""The Open Bandit Dataset's small sample (ZOZOTOWN's fashion e-commerce; Apache-2.0), read
from inside the ``obp`` 0.4.1 wheel where it ships: nothing of it is copied into the project
and none of obp's dependencies is installed. ``make obd`` downloads the wheel into the cache.

Each campaign (``all``, ``men``, ``women``) was logged by two policies, ``random`` (uniform
over the campaign's items) and ``bts`` (Bernoulli Thompson sampling), three positions per
impression, 10,000 impressions each: the one real log here with known logging propensities,
for off-policy value (``causalrec_toolkit.bandit``).
"""

from __future__ import annotations

import io
import os
import zipfile
from pathlib import Path
from typing import Literal

import polars as pl

from causalrec_toolkit.bandit import BanditLog

Policy = Literal["random", "bts"]
Campaign = Literal["all", "men", "women"]
WHEEL = "obp-0.4.1-py3-none-any.whl"


def default_wheel() -> Path:
    """Where ``make obd`` puts the wheel: ``$CAUSALREC_OBD_WHEEL`` (the Makefile exports it),
    else ``.causalrec/cache/obp/`` under the working directory."""
    return Path(os.environ.get("CAUSALREC_OBD_WHEEL") or Path(".causalrec/cache/obp") / WHEEL)


def read_impressions(wheel: Path, policy: Policy, campaign: Campaign) -> pl.DataFrame:
    """The campaign's impressions under ``policy``: ``timestamp, item_id, position`` (1-based),
    ``click, propensity_score`` and the user features, as the CSV inside the wheel has them."""
    if not wheel.exists():
        raise FileNotFoundError(f"{wheel} not found: `make obd` downloads it (pip download obp==0.4.1 --no-deps)")
    name = f"obp/dataset/obd/{policy}/{campaign}/{campaign}.csv"
    with zipfile.ZipFile(wheel) as archive:
        if name not in archive.namelist():
            raise ValueError(f"{wheel} has no {name}: policy must be random or bts, campaign all, men or women")
        frame = pl.read_csv(io.BytesIO(archive.read(name)))
    return frame.drop(frame.columns[0])  # the CSV's unnamed row index


def read_open_bandit(wheel: Path, policy: Policy, campaign: Campaign = "all") -> BanditLog:
    """The impressions as a ``BanditLog`` (positions 0-based; actions are the campaign's item ids)."""
    frame = read_impressions(wheel, policy, campaign)
    n_actions = int(frame["item_id"].max()) + 1
    return BanditLog(
        action=frame["item_id"].to_numpy(),
        position=frame["position"].to_numpy() - 1,
        reward=frame["click"].to_numpy(),
        pscore=frame["propensity_score"].to_numpy(),
        n_actions=n_actions,
        len_list=int(frame["position"].max()),
    )
