"""Policy value benchmark: how often the list values' intervals cover the truth, and the one
real log with known propensities.

    .venv/bin/python benchmarks/policy_value.py              # 30 draws of 3 simulated worlds + OBD
    .venv/bin/python benchmarks/policy_value.py --draws 10 --skip-obd

Simulated worlds (default, hidden, continuous): a ranking that knows each slice pair's true
uplift up to noise is valued off the randomized slice (top-5 lists, ``value_of_lists``) beside
popularity, the logging policy and random; printed per measure and estimator, pooled over the
four policies' lists: coverage of the 95% interval over the draws, mean error and RMSE against
the lists' true value. Open Bandit Dataset (the
sample inside obp's wheel, ``make obd``): each policy's value from the other policy's log
against the click rate it earned on its own, as a ratio.
"""

from __future__ import annotations

import argparse

import numpy as np
import polars as pl


def simulated(kind: str, draws: int) -> pl.DataFrame:
    from causalrec_plugins.ingest.scenarios import draw_world
    from causalrec_plugins.ingest.simulator import SimulatorConfig, simulate
    from causalrec_toolkit import value_of_lists

    frames = []
    for seed in range(draws):
        data = simulate(SimulatorConfig(seed=seed)) if kind == "default" else draw_world(kind, seed=seed)
        test = data.interactions.filter(pl.col("split") == "test").select("user_id", "item_id")
        truth = test.join(data.truth.uplift, on=["user_id", "item_id"], how="left", maintain_order="left")
        noise = np.random.default_rng(1000 + seed).normal(0, 0.03, test.height)
        scores = truth.select("user_id", "item_id", (pl.col("uplift") + noise).alias("score"))
        frames.append(value_of_lists(data.interactions, scores, 5, 0.5, truth=data.truth.uplift))
    values = pl.concat(frames)
    error = pl.col("value") - pl.col("true_value")
    inside = (pl.col("ci_low") <= pl.col("true_value")) & (pl.col("true_value") <= pl.col("ci_high"))
    covered = pl.when(pl.col("ci_low").is_nan()).then(None).otherwise(inside)  # dm: no interval
    return (
        values.group_by("measure", "estimator", maintain_order=True)
        .agg(
            covered.mean().alias("coverage"),
            error.mean().alias("mean_error"),
            (error**2).mean().sqrt().alias("rmse"),
        )
        .with_columns(pl.lit(kind).alias("world"), pl.lit(draws).alias("draws"))
    )


def open_bandit() -> pl.DataFrame:
    from causalrec_plugins.ingest.obd import default_wheel, read_open_bandit
    from causalrec_toolkit.bandit import action_distribution, bandit_policy_value

    rows = []
    for campaign in ("all", "men", "women"):
        random, bts = (read_open_bandit(default_wheel(), p, campaign) for p in ("random", "bts"))
        random.n_actions = bts.n_actions = max(random.n_actions, bts.n_actions)
        uniform = np.full((bts.n_actions, bts.len_list), 1 / bts.n_actions)
        for target, log, own in (("bts", random, bts), ("random", bts, random)):
            shown = action_distribution(own) if target == "bts" else uniform
            rate = own.on_policy[0]
            for name, (value, low, high) in bandit_policy_value(log, shown).items():
                rows.append((campaign, f"{target} from {'random' if target == 'bts' else 'bts'} log", name,
                             value, low, high, rate, value / rate, low <= rate <= high))  # fmt: skip
    schema = ["campaign", "policy", "estimator", "value", "ci_low", "ci_high", "own_rate", "ratio", "covers_rate"]
    return pl.DataFrame(rows, schema=schema, orient="row")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--draws", type=int, default=30)
    parser.add_argument("--skip-obd", action="store_true")
    args = parser.parse_args()
    pl.Config.set_tbl_rows(60)
    pl.Config.set_tbl_width_chars(160)
    pl.Config.set_float_precision(4)
    print(pl.concat([simulated(kind, args.draws) for kind in ("default", "hidden", "continuous")]))
    if not args.skip_obd:
        print(open_bandit())


if __name__ == "__main__":
    main()
