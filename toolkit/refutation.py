"""Refuting the headline effect estimate, in the spirit of DoWhy's refuters.

Each refuter re-runs the headline's *own* estimator (the effects plugin's ``reestimate``)
under a change that, if the causal assumptions hold, must leave a known answer:

- placebo treatment: the exposure is replaced by a placebo (a permutation, and a draw from
  the exposure's assignment model over every observed pre-exposure feature); a placebo has no
  effect, so the adjusted estimate must be near zero;
- random common cause: an independent random number is added as a common cause; the
  estimate must not move;
- random halves: the estimate on random halves of the log must agree with the full one
  within its interval;
- randomized slice: where the ``test`` slice randomized exposure, its difference in means is
  the effect itself; the headline must agree with it. This is the one refuter that can see an
  *unobserved* confounder. It reads the slice's outcomes for this comparison only.

A failure names the assumption that most likely broke, from the evidence at hand: when the
estimators of ``treatment_effects`` disagree with each other, or another one agrees with the
randomized slice while the headline does not, the headline's estimator is misspecified (its
models miss part of the confounding); when all of them agree with each other and disagree
with the randomized slice alike, something that drives both exposure and outcome is not among
the variables: unobserved confounding.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import polars as pl
from sklearn.ensemble import HistGradientBoostingClassifier

from causalrec_toolkit.data import EffectInputs, PairFeatures
from causalrec_toolkit.sampling import FIT_ROWS, sample_rows

__all__ = [
    "Agreement",
    "CHECKS",
    "Headline",
    "LEVELS",
    "MIN_ROWS_PER_ARM",
    "MISSPECIFIED",
    "RANDOM_CAUSE",
    "REFUTATION_ROWS",
    "REFUTERS",
    "Refutation",
    "RefutationContext",
    "UNOBSERVED",
    "adjusted_rows",
    "agreement",
    "assignment_propensity",
    "headline",
    "largest_shift",
    "not_applicable",
    "placebo_treatment",
    "random_common_cause",
    "random_halves",
    "randomized_slice",
    "run_refutations",
]

RANDOM_CAUSE = "random_common_cause"
LEVELS = 8  # quantile bins of the random common cause in the discrete table
REFUTERS = ("placebo_treatment", "random_common_cause", "random_halves", "randomized_slice")
Z95, Z99 = 1.959963984540054, 2.5758293035489004
MIN_ROWS_PER_ARM = 30

Reestimate = Callable[[EffectInputs], float]

MISSPECIFIED = "misspecification"
UNOBSERVED = "unobserved confounding"


@dataclass
class Headline:
    """The estimate under refutation."""

    estimator: str
    estimate: float
    ci_low: float
    ci_high: float

    @property
    def half_width(self) -> float:
        width = (self.ci_high - self.ci_low) / 2
        return width if math.isfinite(width) and width > 0 else 0.0

    @property
    def stderr(self) -> float:
        return self.half_width / Z95


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
    cause: str = ""  # on failure: what most likely broke
    details: dict[str, Any] = field(default_factory=dict)

    def metadata(self) -> dict[str, Any]:
        meta: dict[str, Any] = {"assumption": self.assumption, "summary": self.message, "applicable": self.applicable}
        if self.cause:
            meta["likely_cause"] = self.cause
        for key, label in (
            ("original", "original_estimate"),
            ("refuted", "refuted_estimate"),
            ("tolerance", "tolerance"),
        ):
            value = getattr(self, key)
            if math.isfinite(value):
                meta[label] = round(float(value), 5)
        meta.update(
            {
                k: round(v, 5) if isinstance(v, float) else v
                for k, v in self.details.items()
                if isinstance(v, int | float | str | bool)
            }
        )
        return meta


@dataclass
class Agreement:
    """How the other adjusted ATE estimates of the effects table relate to the headline."""

    others: dict[str, tuple[float, float]]  # estimator -> (estimate, standard error)
    disagreeing: list[str]

    @property
    def estimators_disagree(self) -> bool:
        return bool(self.disagreeing)

    def describe(self) -> str:
        if not self.others:
            return "no other adjusted estimator to compare with"
        if not self.disagreeing:
            return "the other adjusted estimators agree with it (" + ", ".join(self.others) + ")"
        return "it disagrees with " + ", ".join(f"{n} ({self.others[n][0]:+.4f})" for n in self.disagreeing)


def headline(effects: pl.DataFrame) -> Headline | None:
    """The first ATE row, or None when the effect is not identifiable."""
    ate = effects.filter(pl.col("estimand") == "ATE")
    if ate.is_empty():
        return None
    row = ate.row(0, named=True)
    if row["estimate"] is None or not math.isfinite(row["estimate"]):
        return None
    nan = float("nan")
    return Headline(
        estimator=row["estimator"],
        estimate=float(row["estimate"]),
        ci_low=float(row["ci_low"]) if row["ci_low"] is not None else nan,
        ci_high=float(row["ci_high"]) if row["ci_high"] is not None else nan,
    )


def adjusted_rows(effects: pl.DataFrame) -> int:
    """How many ATE rows of ``effects`` come from an adjusted estimator (not the naive one)."""
    return effects.filter((pl.col("estimand") == "ATE") & (pl.col("estimator") != "naive")).height


def agreement(effects: pl.DataFrame, head: Headline) -> Agreement:
    """The other adjusted ATE rows (not the naive one) and which of them disagree with the
    headline by more than 1.96 standard errors of their difference."""
    others: dict[str, tuple[float, float]] = {}
    for row in effects.filter(pl.col("estimand") == "ATE").iter_rows(named=True):
        name = row["estimator"]
        values = (row["estimate"], row["ci_low"], row["ci_high"])
        if name in (head.estimator, "naive") or any(v is None or not math.isfinite(v) for v in values):
            continue
        others[name] = (float(row["estimate"]), (float(row["ci_high"]) - float(row["ci_low"])) / (2 * Z95))
    disagreeing = [
        n for n, (est, se) in others.items() if abs(est - head.estimate) > Z95 * math.hypot(se, head.stderr) + 1e-12
    ]
    return Agreement(others, disagreeing)


def not_applicable(name: str, assumption: str, why: str) -> Refutation:
    return Refutation(name, True, assumption, f"not applicable: {why}", applicable=False)


@dataclass(frozen=True)
class RefutationContext:
    """What every refuter is given, built once by ``run_refutations``: the headline, the inputs,
    the headline's own estimator to re-run on changed inputs, how the other estimators relate to
    it, and the settings. One object, so each refuter's signature and set-up is written once and
    the refuter itself is only its own change and its own verdict."""

    head: Headline
    inputs: EffectInputs
    reestimate: Reestimate
    agree: Agreement
    n_simulations: int = 1
    n_splits: int = 1
    abs_tolerance: float = 0.005
    seed: int = 0

    @property
    def repeats(self) -> int:
        """How many simulated changes a refuter draws (at least one)."""
        return max(1, self.n_simulations)

    def rng(self, offset: int) -> np.random.Generator:
        """A generator of the refuter's own (``seed + offset``), so its draws do not depend on
        which refuters ran before it."""
        return np.random.default_rng(self.seed + offset)

    def tolerance(self, band: float) -> float:
        """``band``, never under the absolute floor: a tiny interval must not fail on noise."""
        return max(self.abs_tolerance, band)

    def verdict(
        self,
        name: str,
        assumption: str,
        passed: bool,
        message: str,
        refuted: float,
        tolerance: float,
        cause: str = "",
        **details: Any,
    ) -> Refutation:
        """The refuter's result against the headline estimate; ``cause`` is kept on failure only."""
        return Refutation(
            name,
            passed,
            assumption,
            message,
            self.head.estimate,
            refuted,
            tolerance,
            cause="" if passed else cause,
            details=details,
        )


def assignment_propensity(inputs: EffectInputs, seed: int) -> np.ndarray:
    """P(exposed | every observed pre-exposure feature): the model placebos are drawn from."""
    if inputs.features is not None:
        columns = inputs.features.feature_columns
        w, t, _ = inputs.features.arrays(columns)
        categorical = [c in set(inputs.features.categorical) for c in columns]
    else:
        observed = [c for c in inputs.variables.columns if c not in (inputs.treatment, inputs.outcome)]
        codes = [inputs.variables[c].cast(pl.String).rank("dense").to_numpy() - 1 for c in observed]
        w = np.column_stack(codes).astype(float) if codes else np.zeros((inputs.variables.height, 1))
        t = inputs.variables[inputs.treatment].cast(pl.Int64).to_numpy()
        categorical = [True] * len(codes) if codes else [False]
    if w.shape[1] == 0:
        return np.full(len(t), t.mean())
    model = HistGradientBoostingClassifier(
        max_iter=100,
        early_stopping=True,
        categorical_features=categorical if any(categorical) else None,
        random_state=seed,
    )
    rows = sample_rows(len(t), FIT_ROWS, seed)  # fitted on a sample of a large log, predicted on every row
    fitted = model.fit(w, t) if rows is None else model.fit(w[rows], t[rows])
    return fitted.predict_proba(w)[:, 1]


def placebo_treatment(ctx: RefutationContext) -> Refutation:
    """Placebo exposures (permuted; drawn from the assignment model) must have no effect."""
    head, inputs, agree = ctx.head, ctx.inputs, ctx.agree
    assumption = "the adjustment blocks every backdoor path through the observed variables"
    rng = ctx.rng(0)
    t = inputs.variables[inputs.treatment].cast(pl.Int64).to_numpy()
    e_all = assignment_propensity(inputs, ctx.seed)
    draws: dict[str, list[float]] = {"permuted": [], "assignment": []}
    for _ in range(ctx.repeats):
        for kind in draws:
            placebo = rng.permutation(t) if kind == "permuted" else (rng.random(len(t)) < e_all).astype(np.int64)
            draws[kind].append(ctx.reestimate(inputs.with_treatment(placebo)))
    means = {k: float(np.nanmean(v)) for k, v in draws.items()}
    # A 99% band of one placebo estimate (its spread is about the headline's standard error),
    # so that four refuters together rarely cry wolf.
    tolerance = ctx.tolerance(Z99 * head.stderr / math.sqrt(ctx.repeats))
    worst = max(means, key=lambda k: abs(means[k]) if math.isfinite(means[k]) else -1.0)
    passed = all(math.isfinite(v) and abs(v) <= tolerance for v in means.values())
    cause = ""
    if passed:
        message = (
            f"placebo exposures have no effect, as they must: {means['permuted']:+.4f} (permuted), "
            f"{means['assignment']:+.4f} (drawn from the assignment model); tolerance ±{tolerance:.4f}"
        )
    elif worst == "assignment":
        cause = "missing adjustment" if not agree.estimators_disagree else MISSPECIFIED
        message = (
            f"a placebo drawn from the exposure's assignment model shows an 'effect' of {means[worst]:+.4f} "
            f"(tolerance ±{tolerance:.4f}): broken assumption: {assumption}. "
        )
        if cause == MISSPECIFIED:
            message += (
                f"The headline's estimator ({head.estimator}) is most likely misspecified: {agree.describe()}; its "
                "models miss part of how the observed variables drive exposure (try flexible nuisance models)"
            )
        else:
            message += (
                "An observed variable that drives exposure also drives the outcome but is not adjusted for: the "
                "graph is most likely missing an edge into the outcome or the exposure"
            )
    else:
        cause = MISSPECIFIED
        message = (
            f"a permuted placebo exposure shows an 'effect' of {means[worst]:+.4f} (tolerance ±{tolerance:.4f}): "
            f"broken assumption: the estimator finds no effect where there is none. {head.estimator} is most likely "
            "misspecified or overfitted (or outcome information leaks into the variables)"
        )
    return ctx.verdict(
        "placebo_treatment",
        assumption,
        passed,
        message,
        means[worst],
        tolerance,
        cause,
        placebo_permuted=means["permuted"],
        placebo_assignment=means["assignment"],
    )


def random_common_cause(ctx: RefutationContext) -> Refutation:
    """Adjusting for an added independent random variable must leave the estimate where it was."""
    assumption = "the estimate rests on the adjustment set, not on incidental cells of the data"
    inputs, rng = ctx.inputs, ctx.rng(1)
    base = ctx.head.estimate  # the estimators are deterministic given their seed: no refit needed
    shifts = [
        ctx.reestimate(inputs.with_common_cause(RANDOM_CAUSE, rng.normal(size=inputs.variables.height), LEVELS)) - base
        for _ in range(ctx.repeats)
    ]
    shift = float(np.nanmax(np.abs(shifts))) if np.isfinite(shifts).any() else float("inf")
    tolerance = ctx.tolerance(0.5 * ctx.head.half_width)
    passed = shift <= tolerance
    message = (
        f"adding a random common cause moves the estimate by at most {shift:.4f} (tolerance {tolerance:.4f})"
        if passed
        else f"adding an independent random variable to the adjustment moves the estimate by {shift:.4f} "
        f"(tolerance {tolerance:.4f}): broken assumption: {assumption}. The estimate is fragile: thin overlap "
        "between exposed and unexposed rows, or nuisance models that overfit"
    )
    refuted = base + float(np.nanmean(shifts))
    return ctx.verdict(
        "random_common_cause", assumption, passed, message, refuted, tolerance, MISSPECIFIED, largest_shift=shift
    )


def random_halves(ctx: RefutationContext) -> Refutation:
    """A random half of the log (one per split) must give an estimate near the full one: a
    half's estimate deviates from the full one by about one standard error of the full
    estimate. Its complement is not estimated: it says little more, at the cost of a refit."""
    assumption = "the interval reflects the estimate's real sampling variability (enough overlap and data)"
    rng, n = ctx.rng(2), ctx.inputs.variables.height
    halves = []
    for _ in range(max(1, ctx.n_splits)):
        halves.append(ctx.reestimate(ctx.inputs.take(np.sort(rng.permutation(n)[: n // 2]))))
    deviations = np.abs(np.array(halves) - ctx.head.estimate)
    typical = float(np.nanmean(deviations)) if np.isfinite(deviations).any() else float("inf")
    tolerance = ctx.tolerance(ctx.head.half_width)
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
    refuted = float(np.nanmean(halves))
    return ctx.verdict(
        "random_halves",
        assumption,
        passed,
        message,
        refuted,
        tolerance,
        "thin overlap",
        mean_deviation=typical,
        halves=len(halves),
    )


def largest_shift(train: PairFeatures, test: PairFeatures) -> tuple[str, float]:
    """The feature whose mean differs most between training and slice pairs (in training
    standard deviations): a large one means the slice's pairs are not like the log's."""
    worst, value = "", 0.0
    for column in train.feature_columns:
        if column not in test.frame.columns:
            continue
        sd = train.frame[column].std()
        if not sd:
            continue
        gap = abs((test.frame[column].mean() or 0.0) - (train.frame[column].mean() or 0.0)) / sd
        if gap > value:
            worst, value = column, float(gap)
    return worst, value


def randomized_slice(ctx: RefutationContext) -> Refutation:
    """The headline must agree with the randomized slice's difference in means, and when it
    does not, the other estimators say whether it is the headline or the data."""
    head, inputs, agree = ctx.head, ctx.inputs, ctx.agree
    assumption = "no unobserved common cause of exposure and outcome (the adjustment set is sufficient)"
    test = inputs.test
    if test is None or test.height == 0:
        return not_applicable("randomized_slice", assumption, "the data has no split = test slice")
    randomized, se_slice, n1, n0 = test.difference_in_means()
    if min(n1, n0) < MIN_ROWS_PER_ARM or not math.isfinite(se_slice):
        return not_applicable(
            "randomized_slice", assumption, f"the test slice has fewer than {MIN_ROWS_PER_ARM} rows in an exposure arm"
        )

    def tolerance_for(se: float) -> float:
        return ctx.tolerance(Z95 * math.hypot(se_slice, se))

    tolerance = tolerance_for(head.stderr)
    gap = head.estimate - randomized
    details: dict[str, Any] = {"test_rows": test.height, "randomized_se": se_slice}
    if abs(gap) <= tolerance:
        message = (
            f"the headline ({head.estimator}, {head.estimate:+.4f}) agrees with the randomized slice's difference in "
            f"means ({randomized:+.4f} ± {Z95 * se_slice:.4f}); tolerance ±{tolerance:.4f}"
        )
        return ctx.verdict("randomized_slice", assumption, True, message, randomized, tolerance, **details)
    agreeing = [n for n, (est, se) in agree.others.items() if abs(est - randomized) <= tolerance_for(se)]
    same_side = all(np.sign(est - randomized) == np.sign(gap) for est, _ in agree.others.values())
    message = (
        f"the headline ({head.estimator}, {head.estimate:+.4f}) disagrees with what randomized exposure shows "
        f"({randomized:+.4f} ± {Z95 * se_slice:.4f}) by {gap:+.4f} (tolerance ±{tolerance:.4f}). "
    )
    if agreeing:
        cause = MISSPECIFIED
        message += (
            f"Most likely cause: {cause} of the headline's estimator, not an unobserved confounder: "
            f"{', '.join(f'{n} ({agree.others[n][0]:+.4f})' for n in agreeing)} agree(s) with the randomized slice on "
            f"the same adjustment set. {head.estimator}'s models miss part of the observed confounding "
            "(interactions, thresholds on numbers, binned variables): use the agreeing estimator or flexible "
            "nuisance models"
        )
    elif agree.estimators_disagree and not same_side:
        cause = MISSPECIFIED
        message += (
            f"Most likely cause: {cause}: the estimators disagree with each other ({agree.describe()}) and fall on "
            "both sides of the randomized slice; fix the estimators before reading this as unobserved confounding"
        )
    else:
        cause = UNOBSERVED
        alike = ", ".join(agree.others) or "the only estimator run"
        message += (
            f"Most likely cause: {cause}: the observational estimators ({head.estimator}, {alike}) lie on the same "
            f"side of the randomized slice; broken assumption: {assumption}. Something that drives both exposure and "
            "outcome is not among the variables (or the graph misses it)"
        )
    column, shift = largest_shift(inputs.features, test) if inputs.features is not None else ("", 0.0)
    if shift > 0.25:
        message += (
            f". Note: the slice's pairs differ from the log's ({column} by {shift:.2f} standard deviations), so "
            "effect heterogeneity may explain part of the gap"
        )
    details |= {"largest_feature_shift": shift, "agreeing_estimators": ", ".join(agreeing) or "none"}
    return ctx.verdict("randomized_slice", assumption, False, message, randomized, tolerance, cause, **details)


CHECKS: dict[str, Callable[[RefutationContext], Refutation]] = {
    check.__name__: check for check in (placebo_treatment, random_common_cause, random_halves, randomized_slice)
}


REFUTATION_ROWS = 500_000  # past this, the refuters that re-estimate work on a random sample of the log


def run_refutations(
    effects: pl.DataFrame,
    inputs: EffectInputs,
    reestimate: Callable[[EffectInputs, str], float],
    n_simulations: int = 1,
    n_splits: int = 1,
    abs_tolerance: float = 0.005,
    seed: int = 0,
    log: Any = None,
    reference: pl.DataFrame | None = None,
    max_rows: int = REFUTATION_ROWS,
) -> list[Refutation]:
    """Every refuter of ``REFUTERS`` on the headline of ``effects``, re-estimated by
    ``reestimate(inputs, estimator)`` (the effects plugin's own). ``reference`` holds more ATE
    rows to weigh the headline against (another plugin's, when ``effects`` has no other).

    On a log of more than ``max_rows`` training rows the refuters that re-estimate (placebo,
    random common cause, random halves) work on a random ``max_rows`` of them, as if that were
    the log: the headline is re-estimated there once, and its interval widened by
    sqrt(rows / max_rows), the sample's own standard error. The randomized slice weighs the
    full headline."""
    head = headline(effects)
    if head is None or inputs.variables[inputs.treatment].n_unique() < 2:
        why = "the effect of exposure is not identifiable here (exposure takes one value, e.g. rating data)"
        return [not_applicable(name, "identifiability", why) for name in REFUTERS]

    def own(changed: EffectInputs) -> float:
        return reestimate(changed, head.estimator)

    pool = effects if reference is None else pl.concat([effects, reference.select(effects.columns)])
    agree = agreement(pool, head)
    full = RefutationContext(head, inputs, own, agree, n_simulations, n_splits, abs_tolerance, seed)
    sampled, rows = full, sample_rows(inputs.variables.height, max_rows, seed)
    if rows is not None:
        part = inputs.take(rows)
        base, scale = own(part), math.sqrt(inputs.variables.height / len(rows))
        width = scale * head.half_width
        sampled = replace(full, head=Headline(head.estimator, base, base - width, base + width), inputs=part)
        if log is not None:
            log.info(
                f"refutation re-estimates on a random {len(rows):,} of {inputs.variables.height:,} training rows "
                f"(there: {base:+.4f}, interval widened x{scale:.2f})"
            )
    results = []
    for name in REFUTERS:
        start = time.perf_counter()
        results.append(CHECKS[name](full if name == "randomized_slice" else sampled))
        if rows is not None and name != "randomized_slice":
            results[-1].details["sampled_rows"] = len(rows)
        if log is not None:
            verdict = "passed" if results[-1].passed else f"FAILED ({results[-1].cause or 'see message'})"
            log.info(f"refutation {name}: {verdict} ({time.perf_counter() - start:.1f}s)")
    return results
