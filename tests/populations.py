"""A simulated population with known purchase-model parameters: profiles of BG/NBD buyers
with Gamma-Gamma order values, observed up to ``AS_OF`` (the fits' and benchmarks' input)."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np

from scorers.bgnbd import BgNbdParams
from scorers.gamma_gamma import GammaGammaParams
from scorers.profile import Profile

WEEK = 7 * 86_400
AS_OF = datetime(2026, 1, 1, tzinfo=UTC)
END = int(AS_OF.timestamp())
BG = BgNbdParams(r=0.8, alpha=6.0, a=0.6, b=3.0)
GG = GammaGammaParams(p=6.0, q=4.0, v=15.0)


def simulate(n: int, seed: int) -> list[Profile]:
    """Profiles of a BG/NBD + Gamma-Gamma population (BG, GG) observed for 52-104 weeks."""
    rng = np.random.default_rng(seed)
    lam, drop_p = rng.gamma(BG.r, 1 / BG.alpha, n), rng.beta(BG.a, BG.b, n)
    big_t, drop_after = rng.uniform(52, 104, n), rng.geometric(drop_p)
    x, t_x, clock, active = np.zeros(n, np.int64), np.zeros(n), np.zeros(n), np.ones(n, bool)
    while active.any():  # one repeat purchase per round; drop out after the drop_after-th
        clock[active] += rng.exponential(1 / lam[active])
        active &= clock <= big_t
        x[active] += 1
        t_x[active] = clock[active]
        active &= x < drop_after
    orders = x + 1  # each on its own day
    nu = rng.gamma(GG.q, 1 / GG.v, n)  # each order value ~ Gamma(p, nu)
    first_value = rng.gamma(GG.p, 1 / nu)
    repeat_total = np.where(x > 0, rng.gamma(np.maximum(x, 1) * GG.p, 1 / nu), 0.0)
    first = END - np.round(big_t * WEEK).astype(np.int64)
    last = first + np.round(t_x * WEEK).astype(np.int64)
    return [
        Profile(first_purchase_at=int(f), last_purchase_at=int(lp), orders=int(k),
                purchase_days=int(k), first_day_minor=round(v * 100),
                gross_minor=round(v * 100) + round(rest * 100))
        for f, lp, k, v, rest in zip(first, last, orders, first_value, repeat_total, strict=True)
    ]  # fmt: skip
