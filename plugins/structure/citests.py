"""Conditional independence tests on integer codes, as pgmpy CI tests.

pgmpy's ``ChiSquare`` / ``GSq`` build a dense table over *every* joint state of the
conditioning set (thousands of empty strata for five conditioning variables) and call
``scipy.stats.chi2.sf`` (a few hundred microseconds of argument checking per call). These
count only the strata that occur, take the p-value from ``scipy.special.chdtrc``, and cache
every answer. Degrees of freedom are adjusted for empty rows and columns per stratum, as
pgmpy does. A test with no degrees of freedom left (in every stratum X or Y is constant: a
deterministic relation, or strata too thin) cannot tell, and answers "dependent" like
pgmpy's (whose p-value is NaN there): dropping an edge on no evidence would break every
deterministic network (asia's ``either`` is the OR of two parents).
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from pgmpy.ci_tests._base import _BaseCITest, _CITestResult
from scipy.special import chdtrc

from causalrec_plugins.structure.table import CodedTable, compact, joint_index

CITestName = Literal["g_test", "chi_square"]


class CodedCITest(_BaseCITest):
    """G-test (log-likelihood ratio) or Pearson chi-square of X ⊥ Y | Z on a ``CodedTable``."""

    _tags = {"name": "causalrec-coded", "data_types": ("discrete",), "requires_data": True, "is_symmetric": True}

    def __init__(self, table: CodedTable, statistic: str = "g_test") -> None:
        if statistic not in ("g_test", "chi_square"):
            raise ValueError(f"unknown CI test {statistic!r}; choose 'g_test' or 'chi_square'")
        self.table = table
        self.statistic = statistic
        self._position = {n: i for i, n in enumerate(table.names)}
        self._cards = table.cards
        self.tests_run = 0
        super().__init__(use_cache=True)

    def _validate_inputs(self, X, Y, Z) -> None:
        for v in (X, Y, *Z):
            if v not in self._position:
                raise ValueError(f"CI test on unknown variable {v!r}")

    def _compute_result(self, X, Y, Z) -> _CITestResult:
        self.tests_run += 1
        codes, cards = self.table.codes, self._cards
        x, y = self._position[X], self._position[Y]
        kx, ky = int(cards[x]), int(cards[y])
        z, n_z = joint_index(codes, cards, [self._position[v] for v in Z])
        z, n_z = compact(z, n_z, kx * ky)
        zx = z * kx + codes[:, x]
        zy = z * ky + codes[:, y]
        count = self.table.count
        cell = count(zx * ky + codes[:, y], n_z * kx * ky)
        m_zx = count(zx, n_z * kx)
        m_zy = count(zy, n_z * ky)
        m_z = count(z, n_z)
        rows = (m_zx.reshape(n_z, kx) > 0).sum(axis=1)
        cols = (m_zy.reshape(n_z, ky) > 0).sum(axis=1)
        dof = int(np.dot(np.maximum(rows - 1, 0), np.maximum(cols - 1, 0)))
        if self.statistic == "g_test":
            # G = 2 Σ O ln(O N_z / (N_zx N_zy)), summed margin by margin
            stat = 2.0 * float(_xlogx(cell) - _xlogx(m_zx) - _xlogx(m_zy) + _xlogx(m_z))
        else:
            # Pearson: Σ (O − E)² / E = Σ O² / E − N over the observed cells
            nz = np.flatnonzero(cell)
            o = cell[nz].astype(np.float64)
            c_zx, c_y = np.divmod(nz, ky)
            c_z = c_zx // kx
            expected = m_zx[c_zx] * m_zy[c_z * ky + c_y] / m_z[c_z]
            stat = float(np.sum(o * o / expected) - self.table.n)
        stat = max(stat, 0.0)
        p_value = 0.0 if dof == 0 else float(chdtrc(dof, stat))
        effect = float(np.sqrt(stat / (self.table.n * max(min(kx, ky) - 1, 1))))
        return _CITestResult(statistic=stat, p_value=p_value, effect_size=effect, attributes={"dof_": dof})


def _xlogx(counts: np.ndarray) -> float:
    c = counts[counts > 0].astype(np.float64)  # 0 log 0 = 0 (and 1 log 1 = 0)
    return float(np.dot(c, np.log(c)))
