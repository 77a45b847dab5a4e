"""Which estimate the backdoor plugin puts first (the pipeline's headline), and why.

The rule, from diagnostics that every run computes:

1. Candidates are the adjusted estimates on the outcome's own scale with a finite interval,
   in this order of preference: ``dr_learner`` (doubly robust: right when either nuisance
   model is), ``within_user`` (doubly robust within each user's log: also right where a
   confounder constant within a user's items of one topic escapes the features, but it leans
   on a model of the effect where a user's topic has one arm only), ``causal_forest``,
   ``linear_dml``, ``snips``, ``ips`` (right only when the propensity model is),
   ``bn_do_query`` (right only when the discrete network is). The naive difference is never
   a candidate.
2. Where the data has a randomized test slice with enough rows in both arms, its difference
   in means is an unconfounded estimate of the effect on comparable pairs. Two estimates
   agree when they differ by less than 1.96 standard errors of their difference. If the most
   preferred candidate disagrees with the slice, the first candidate that agrees with the
   slice *and disagrees with the preferred one* becomes the headline (one the slice cannot
   tell from the preferred one is no better evidence); if none agrees, the candidate closest
   to the slice among those that disagree with the preferred one and are closer to the slice
   than it is. Otherwise the order of preference stands. Either way the ``randomized_slice``
   refutation check says how far the headline is from the slice and what most likely broke.
3. Otherwise the most preferred candidate is the headline.

Overlap (how many pairs have a propensity near 0 or 1, and the effective sample size of the
inverse-propensity weights) and the agreement between candidates are reported with the choice;
thin overlap widens the doubly robust interval rather than changing the rule.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from causalrec_assets.plugin_api import PairFeatures
from causalrec_plugins.effects.crossfit import EXTREME
from causalrec_plugins.effects.estimators import Estimate

PREFERENCE = ("dr_learner", "within_user", "causal_forest", "linear_dml", "snips", "ips", "bn_do_query")
AGREEMENT_Z = 1.96
MIN_SLICE_ROWS_PER_ARM = 30


@dataclass
class Choice:
    estimator: str
    reason: str
    diagnostics: dict[str, Any] = field(default_factory=dict)


def slice_estimate(test: PairFeatures | None) -> Estimate | None:
    """The randomized slice's difference in means, when both arms have enough rows."""
    if test is None or test.height == 0:
        return None
    value, stderr, n1, n0 = test.difference_in_means()
    if min(n1, n0) < MIN_SLICE_ROWS_PER_ARM or not math.isfinite(stderr):
        return None
    return Estimate("randomized_slice", value, value - 1.96 * stderr, value + 1.96 * stderr)


def z_gap(a: Estimate, b: Estimate) -> float:
    """How many standard errors of their difference separate two estimates."""
    scale = math.hypot(a.stderr, b.stderr)
    return abs(a.estimate - b.estimate) / scale if scale > 0 else math.inf


def usable(estimate: Estimate) -> bool:
    return all(math.isfinite(v) for v in (estimate.estimate, estimate.ci_low, estimate.ci_high))


def choose_headline(
    estimates: list[Estimate], overlap: dict[str, float] | None = None, randomized: Estimate | None = None
) -> Choice:
    """The headline under the module's rule; ``estimates`` on the outcome's own scale."""
    by_name = {e.estimator: e for e in estimates if usable(e)}
    candidates = [by_name[name] for name in PREFERENCE if name in by_name]
    if not candidates:
        return Choice("", "no adjusted estimate on the outcome's scale has a finite interval: the first row stands")
    diagnostics: dict[str, Any] = dict(overlap or {})
    chosen = candidates[0]
    why = f"{chosen.estimator} is the most preferred adjusted estimator available"
    if randomized is not None:
        gaps = {c.estimator: z_gap(c, randomized) for c in candidates}
        diagnostics["randomized_slice"] = randomized.estimate
        diagnostics |= {f"slice_gap_z_{name}": round(z, 2) for name, z in gaps.items()}
        agreeing = [c for c in candidates if gaps[c.estimator] <= AGREEMENT_Z]
        better = [c for c in agreeing if z_gap(c, chosen) > AGREEMENT_Z]
        closer = sorted(
            (c for c in candidates if z_gap(c, chosen) > AGREEMENT_Z and gaps[c.estimator] < gaps[chosen.estimator]),
            key=lambda c: gaps[c.estimator],
        )
        if gaps[chosen.estimator] > AGREEMENT_Z and better:
            agreeing = better
            why = (
                f"{chosen.estimator} disagrees with the randomized slice ({gaps[chosen.estimator]:.1f} standard "
                f"errors apart), {agreeing[0].estimator} agrees with it ({gaps[agreeing[0].estimator]:.1f}): "
                f"{agreeing[0].estimator} is the most preferred estimator the slice does not contradict"
            )
            chosen = agreeing[0]
        elif gaps[chosen.estimator] > AGREEMENT_Z and closer:
            why = (
                f"no estimator agrees with the randomized slice; {closer[0].estimator} is the closest to it "
                f"({gaps[closer[0].estimator]:.1f} standard errors apart, {chosen.estimator} "
                f"{gaps[chosen.estimator]:.1f}): see the randomized_slice check"
            )
            chosen = closer[0]
        elif chosen in agreeing:
            why += f" and agrees with the randomized slice ({gaps[chosen.estimator]:.1f} standard errors apart)"
        elif agreeing:
            why += (
                f"; it is {gaps[chosen.estimator]:.1f} standard errors from the randomized slice, but so close to "
                f"{', '.join(c.estimator for c in agreeing)} (which the slice accepts) that the order stands"
            )
        else:
            why += " (no estimator agrees with the randomized slice: see the randomized_slice check)"
    others = [c for c in candidates if c is not chosen]
    if others:
        agree = [f"{c.estimator} {c.estimate:+.4f}" for c in others if z_gap(c, chosen) <= AGREEMENT_Z]
        disagree = [f"{c.estimator} {c.estimate:+.4f}" for c in others if z_gap(c, chosen) > AGREEMENT_Z]
        if agree:
            why += "; agrees with " + ", ".join(agree)
        if disagree:
            why += "; disagrees with " + ", ".join(disagree)
    share = diagnostics.get("share_extreme_propensity")
    if share is not None:
        why += f"; {share:.1%} of pairs have a propensity outside [{EXTREME:g}, {1 - EXTREME:g}]"
        if share > 0.2:
            why += " (thin overlap: the estimate leans on few pairs and its interval is wide)"
    return Choice(chosen.estimator, why, diagnostics)
