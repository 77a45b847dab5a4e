"""Refuting the headline effect estimate, in the spirit of DoWhy's refuters.

Each refuter re-estimates the effect under a change that, if the causal assumptions hold,
must leave a known answer, and reports which assumption broke when it does not:

- placebo treatment: the exposure is replaced by a placebo (a permutation, and a draw from
  the exposure's own assignment model over every observed pre-exposure variable); the
  placebo has no effect, so the adjusted estimate must be near zero. A placebo drawn from the
  assignment model shares the exposure's dependence on observed variables, so a non-zero
  estimate means the graph's adjustment set leaves an observed common cause unadjusted;
- random common cause: an independent random variable is added to the adjustment set; the
  estimate must not move (it does when the estimate hinges on incidental cells: overfitted
  nuisance models, thin overlap);
- random halves: the effect re-estimated on random halves of the log must agree with the
  full estimate within its interval (it does not when the interval understates the real
  variability: extreme weights, positivity violations);
- randomized slice: where the ``test`` slice randomized exposure with outcomes in both arms,
  the observational model's effect on those pairs must agree with the slice's difference in
  means. This is the one refuter that can see an *unobserved* confounder (the other three,
  like DoWhy's, cannot). It reads the test slice's outcomes for this comparison only: nothing
  it computes reaches training or model selection.

Refutation re-estimates with the headline's estimator when it is a row-level one
(``causalrec_assets.estimators.ESTIMATORS``), else with the doubly robust one.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import numpy as np
import polars as pl

from causalrec_assets.bayesnet import adjustment_set
from causalrec_assets.estimators import (
    ESTIMATORS,
    arm_predictions,
    one_hot,
    point_estimate,
    propensity_scores,
)
from causalrec_assets.variables import OUTCOME, TREATMENT

RANDOM_CAUSE = "random_common_cause"
REFUTERS = ("placebo_treatment", "random_common_cause", "random_halves", "randomized_slice")


@dataclass
class Headline:
    """The estimate under refutation and the estimator that re-estimates it."""

    estimator: str
    estimate: float
    ci_low: float
    ci_high: float
    reestimator: str

    @property
    def half_width(self) -> float:
        width = (self.ci_high - self.ci_low) / 2
        return width if math.isfinite(width) and width > 0 else 0.0


@dataclass
class Refutation:
    """One refuter's verdict with what a person needs to act on it."""

    name: str
    passed: bool
    assumption: str
    message: str
    original: float = float("nan")
    refuted: float = float("nan")
    tolerance: float = float("nan")
    applicable: bool = True
    details: dict[str, Any] = field(default_factory=dict)

    def metadata(self) -> dict[str, Any]:
        meta: dict[str, Any] = {"assumption": self.assumption, "summary": self.message}
        for key in ("original", "refuted", "tolerance"):
            value = getattr(self, key)
            if math.isfinite(value):
                meta[f"{key}_estimate" if key != "tolerance" else key] = float(value)
        meta.update({k: v for k, v in self.details.items() if isinstance(v, int | float | str | bool)})
        return meta


def headline(effects: pl.DataFrame) -> Headline | None:
    """The first ATE row, or None when the effect is not identifiable."""
    ate = effects.filter(pl.col("estimand") == "ATE")
    if ate.is_empty():
        return None
    row = ate.row(0, named=True)
    if row["estimate"] is None or not math.isfinite(row["estimate"]):
        return None
    name = row["estimator"]
    return Headline(
        estimator=name,
        estimate=float(row["estimate"]),
        ci_low=float(row["ci_low"]) if row["ci_low"] is not None else float("nan"),
        ci_high=float(row["ci_high"]) if row["ci_high"] is not None else float("nan"),
        reestimator=name if name in ESTIMATORS else "doubly_robust",
    )


def not_applicable(name: str, assumption: str, why: str) -> Refutation:
    return Refutation(name, True, assumption, f"not applicable: {why}", applicable=False)


def _estimate(head: Headline, data: pl.DataFrame, adjust: list[str], t: str, y: str, clip: float) -> float:
    # Uncalibrated propensities: refutation compares re-estimates with each other (or with
    # zero), so it needs the same estimator throughout, not the headline's last decimal.
    adjust = [] if head.reestimator == "naive" else adjust
    return point_estimate(head.reestimator, data, adjust, t, y, clip, calibrate=False)


def placebo_treatment(
    head: Headline,
    data: pl.DataFrame,
    adjust: list[str],
    treatment: str,
    outcome: str,
    n_simulations: int = 2,
    abs_tolerance: float = 0.005,
    clip: float = 0.02,
    seed: int = 0,
) -> Refutation:
    """Placebo exposures (permuted; drawn from the assignment model on every observed
    pre-exposure variable) must have an adjusted effect near zero."""
    assumption = "the adjustment set blocks every backdoor path through the observed variables"
    rng = np.random.default_rng(seed)
    observed = [c for c in data.columns if c not in (treatment, outcome)]
    t = data[treatment].cast(pl.Int64).to_numpy()
    e_all = propensity_scores(one_hot(data, observed), t, clip)
    draws: dict[str, list[float]] = {"permuted": [], "assignment": []}
    for _ in range(max(1, n_simulations)):
        for kind in draws:
            placebo = rng.permutation(t) if kind == "permuted" else (rng.random(len(t)) < e_all).astype(np.int64)
            frame = data.with_columns(pl.Series(treatment, placebo.astype(str)))
            draws[kind].append(_estimate(head, frame, adjust, treatment, outcome, clip))
    means = {k: float(np.mean(v)) for k, v in draws.items()}
    tolerance = max(abs_tolerance, head.half_width)
    worst = max(means, key=lambda k: abs(means[k]))
    passed = all(abs(v) <= tolerance for v in means.values())
    if passed:
        message = (
            f"placebo exposures have no effect, as they must: {means['permuted']:+.4f} (permuted), "
            f"{means['assignment']:+.4f} (drawn from the assignment model); tolerance ±{tolerance:.4f}"
        )
    elif worst == "assignment":
        message = (
            f"a placebo drawn from the exposure's assignment model shows an 'effect' of {means[worst]:+.4f} "
            f"(tolerance ±{tolerance:.4f}) after adjusting for {adjust or 'nothing'}: broken assumption: {assumption}. "
            "An observed variable that drives exposure also drives the outcome but is not adjusted for: the graph "
            "is missing an edge into the outcome (or exposure)"
        )
        extreme = float(np.mean((e_all <= 2 * clip) | (e_all >= 1 - 2 * clip)))
        if extreme > 0.05:
            message += (
                f"; or thin overlap: {extreme:.0%} of rows have an exposure propensity within {2 * clip:g} of 0 or 1"
            )
    else:
        message = (
            f"a permuted placebo exposure shows an 'effect' of {means[worst]:+.4f} (tolerance ±{tolerance:.4f}): "
            "broken assumption: the estimator finds no effect where there is none (check for outcome information "
            "leaking into the variables, or an overfitted outcome model)"
        )
    return Refutation(
        "placebo_treatment",
        passed,
        assumption,
        message,
        original=head.estimate,
        refuted=means[worst],
        tolerance=tolerance,
        details={"placebo_permuted": means["permuted"], "placebo_assignment": means["assignment"]},
    )


def random_common_cause(
    head: Headline,
    data: pl.DataFrame,
    adjust: list[str],
    treatment: str,
    outcome: str,
    n_simulations: int = 2,
    levels: int = 8,
    abs_tolerance: float = 0.005,
    clip: float = 0.02,
    seed: int = 0,
) -> Refutation:
    """Adjusting for an added independent random variable must leave the estimate where it was."""
    assumption = "the estimate rests on the adjustment set, not on incidental cells of the data"
    rng = np.random.default_rng(seed + 1)
    base = _estimate(head, data, adjust, treatment, outcome, clip)
    shifts = []
    for _ in range(max(1, n_simulations)):
        noise = pl.Series(RANDOM_CAUSE, rng.integers(0, levels, data.height).astype(str))
        frame = data.with_columns(noise)
        shifts.append(_estimate(head, frame, adjust + [RANDOM_CAUSE], treatment, outcome, clip) - base)
    shift = float(np.max(np.abs(shifts)))
    tolerance = max(abs_tolerance, 0.25 * head.half_width)
    passed = shift <= tolerance
    message = (
        f"adding a random common cause moves the estimate by at most {shift:.4f} (tolerance {tolerance:.4f})"
        if passed
        else f"adding an independent random variable to the adjustment set moves the estimate by {shift:.4f} "
        f"(tolerance {tolerance:.4f}): broken assumption: {assumption}. The estimate is fragile: thin overlap "
        "between exposed and unexposed rows, or nuisance models that overfit"
    )
    return Refutation(
        "random_common_cause",
        passed,
        assumption,
        message,
        original=base,
        refuted=base + float(np.mean(shifts)),
        tolerance=tolerance,
        details={"largest_shift": shift},
    )


def random_halves(
    head: Headline,
    data: pl.DataFrame,
    adjust: list[str],
    treatment: str,
    outcome: str,
    n_splits: int = 5,
    abs_tolerance: float = 0.005,
    clip: float = 0.02,
    seed: int = 0,
) -> Refutation:
    """Random halves of the log must each give an estimate within the full estimate's interval
    (on average over halves: a half's estimate deviates from the full one by about one
    standard error)."""
    assumption = "the interval reflects the estimate's real sampling variability (enough overlap and data)"
    rng = np.random.default_rng(seed + 2)
    base = _estimate(head, data, adjust, treatment, outcome, clip)
    halves = []
    for _ in range(max(1, n_splits)):
        order = rng.permutation(data.height)
        for part in (order[: data.height // 2], order[data.height // 2 :]):
            halves.append(_estimate(head, data[np.sort(part)], adjust, treatment, outcome, clip))
    deviations = np.abs(np.array(halves) - base)
    typical = float(np.nanmean(deviations)) if np.isfinite(deviations).any() else float("inf")
    tolerance = max(abs_tolerance, head.half_width)
    passed = typical <= tolerance
    message = (
        f"estimates on random halves agree with the full estimate: mean deviation {typical:.4f} "
        f"(tolerance {tolerance:.4f}, the interval's half-width)"
        if passed
        else f"estimates on random halves deviate from the full estimate by {typical:.4f} on average, more than "
        f"the interval's half-width {tolerance:.4f}: broken assumption: {assumption}. The interval is too narrow "
        "for how much the estimate moves: extreme propensity weights or exposure nearly determined by the "
        "variables (a positivity violation)"
    )
    return Refutation(
        "random_halves",
        passed,
        assumption,
        message,
        original=base,
        refuted=float(np.nanmean(halves)),
        tolerance=tolerance,
        details={"mean_deviation": typical, "halves": len(halves)},
    )


def randomized_slice(
    head: Headline,
    train: pl.DataFrame,
    test: pl.DataFrame,
    adjust: list[str],
    treatment: str,
    outcome: str,
    abs_tolerance: float = 0.005,
    clip: float = 0.02,
    min_rows_per_arm: int = 30,
) -> Refutation:
    """On a test slice with randomized exposure, the observational model's effect on the
    slice's pairs must agree with the slice's difference in means."""
    assumption = "no unobserved common cause of exposure and outcome (the adjustment set is sufficient)"
    if test.is_empty():
        return not_applicable("randomized_slice", assumption, "the data has no split = test slice")
    t_test = test[treatment].cast(pl.Int64).to_numpy()
    if min(int(t_test.sum()), int((1 - t_test).sum())) < min_rows_per_arm:
        return not_applicable(
            "randomized_slice", assumption, f"the test slice has fewer than {min_rows_per_arm} rows in an exposure arm"
        )
    y_test = test[outcome].cast(pl.Float64).to_numpy()
    p1, p0 = y_test[t_test == 1].mean(), y_test[t_test == 0].mean()
    randomized = float(p1 - p0)
    se_randomized = math.sqrt(
        y_test[t_test == 1].var() / max(1, int(t_test.sum()))
        + y_test[t_test == 0].var() / max(1, int((1 - t_test).sum()))
    )
    t_train = train[treatment].cast(pl.Int64).to_numpy()
    y_train = train[outcome].cast(pl.Float64).to_numpy()
    columns = [c for c in adjust if c in test.columns]
    reference = train.select(columns).to_dummies().columns if columns else None
    design_train = one_hot(train, columns)
    e = propensity_scores(design_train, t_train, clip)
    weights = np.where(t_train == 1, 1.0 / e, 1.0 / (1.0 - e))
    design_all = np.vstack([design_train, one_hot(test, columns, reference)])
    treated_all = np.concatenate([t_train, np.full(test.height, -1)])  # test rows: predicted, never fitted
    y_all = np.concatenate([y_train, np.zeros(test.height)])
    w_all = np.concatenate([weights, np.zeros(test.height)])
    mu0, mu1 = arm_predictions(design_all, treated_all, y_all, w_all)
    observational = float(np.mean(mu1[len(t_train) :] - mu0[len(t_train) :]))
    se_observational = head.half_width / 1.96
    tolerance = 1.96 * math.hypot(se_randomized, se_observational) + abs_tolerance
    gap = observational - randomized
    passed = abs(gap) <= tolerance
    message = (
        f"the observational estimate on the randomized slice's pairs ({observational:+.4f}) agrees with the slice's "
        f"difference in means ({randomized:+.4f}); tolerance ±{tolerance:.4f}"
        if passed
        else f"the observational estimate on the randomized slice's pairs ({observational:+.4f}) disagrees with what "
        f"randomized exposure shows ({randomized:+.4f}) by {gap:+.4f} (tolerance ±{tolerance:.4f}): broken "
        f"assumption: {assumption}. Something that drives both exposure and outcome is not among the variables "
        f"(or the graph misses it)"
    )
    return Refutation(
        "randomized_slice",
        passed,
        assumption,
        message,
        original=observational,
        refuted=randomized,
        tolerance=tolerance,
        details={"test_rows": test.height, "randomized_se": se_randomized},
    )


def run_refutations(
    effects: pl.DataFrame,
    variables: pl.DataFrame,
    edges: list[tuple[str, str]],
    test_variables: pl.DataFrame | None,
    treatment: str = TREATMENT,
    outcome: str = OUTCOME,
    n_simulations: int = 2,
    n_splits: int = 5,
    abs_tolerance: float = 0.005,
    clip: float = 0.02,
    seed: int = 0,
    log: Any = None,
) -> list[Refutation]:
    """Every refuter of ``REFUTERS`` on the headline estimate of ``effects``."""
    head = headline(effects)
    if head is None or variables[treatment].n_unique() < 2:
        why = "the effect of exposure is not identifiable here (exposure takes one value, e.g. rating data)"
        return [not_applicable(name, "identifiability", why) for name in REFUTERS]
    adjust = [v for v in adjustment_set(edges, treatment, outcome) if v in variables.columns]
    test = test_variables if test_variables is not None else variables.clear()
    common = dict(abs_tolerance=abs_tolerance, clip=clip)
    args = (head, variables, adjust, treatment, outcome)
    refuters = {
        "placebo_treatment": partial(placebo_treatment, *args, n_simulations, seed=seed, **common),
        "random_common_cause": partial(random_common_cause, *args, n_simulations, seed=seed, **common),
        "random_halves": partial(random_halves, *args, n_splits, seed=seed, **common),
        "randomized_slice": partial(randomized_slice, head, variables, test, adjust, treatment, outcome, **common),
    }
    results = []
    for name, refute in refuters.items():
        start = time.perf_counter()
        results.append(refute())
        if log is not None:
            verdict = "passed" if results[-1].passed else "FAILED"
            log.info(f"refutation {name}: {verdict} ({time.perf_counter() - start:.1f}s)")
    return results
