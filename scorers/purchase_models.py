"""One interface over the customer-base models that say how often a customer buys and whether
they are still alive: BG/NBD, MBG/NBD and Pareto/NBD.

:class:`PurchaseModel` is a fitted model of one kind; scoring code asks it for P(alive), the
expected purchases in ``(T, T+t]`` and when P(alive) crosses a threshold, without knowing the
kind. Only MBG/NBD and Pareto/NBD let a customer drop out before a repeat purchase, so only they
give a one-time buyer's silence any meaning (classic BG/NBD keeps their P(alive) at 1).

A fit is *rejected* (:class:`~crm_score.errors.FitRejected`) when its log-likelihood is not
finite or is positive (a likelihood of continuous purchase times this large means a degenerate
optimum, e.g. repeat purchases at ``t_x == 0``), or when a parameter ran off to 0 or infinity:
callers keep the last good version.

Examples
--------
>>> model = fit_purchase_model("mbgnbd", [0, 0, 1, 2, 3, 0, 1, 4], [0, 0, 5, 9, 20, 0, 2, 30],
...                            [40, 35, 38, 30, 39, 20, 25, 39])
>>> soon, later = model.p_alive([0, 0], [0, 0], [1, 30])
>>> model.kind, bool(soon > later)
('mbgnbd', True)
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Any, Literal, get_args

import numpy.typing as npt

from crm_core.errors import FitRejected, ModelError
from scorers._special import FloatArray, broadcast_floats
from scorers.bgnbd import BgNbdParams, expected_purchases, fit_bgnbd, p_alive
from scorers.mbgnbd import fit_mbgnbd, mbgnbd_expected_purchases, mbgnbd_p_alive
from scorers.pareto_nbd import (
    ParetoNbdParams,
    fit_pareto_nbd,
    pareto_nbd_expected_purchases,
    pareto_nbd_p_alive,
    pareto_nbd_p_alive_crossing_time,
)

__all__ = ["DROPOUT_KINDS", "DropoutKind", "PurchaseModel", "check_fit", "fit_purchase_model"]

DropoutKind = Literal["bgnbd", "mbgnbd", "pareto_nbd"]
#: The model kinds, as settings and JSON name them.
DROPOUT_KINDS: tuple[str, ...] = get_args(DropoutKind)
_NAMES = {"bgnbd": "BG/NBD", "mbgnbd": "MBG/NBD", "pareto_nbd": "Pareto/NBD"}


def check_fit(kind: str, log_likelihood: float, at_bound: bool) -> None:
    """Raise :class:`FitRejected` for a fit no one should score with (see the module doc)."""
    name = _NAMES.get(kind, kind)
    if not math.isfinite(log_likelihood) or log_likelihood > 0:
        raise FitRejected(
            f"{name} fit rejected: log-likelihood {log_likelihood!r} is not finite and negative "
            "(degenerate optimum); the last good version stays. Check the purchase times "
            "(same-day orders must be one transaction) and refit."
        )
    if at_bound:
        raise FitRejected(
            f"{name} fit rejected: a parameter ran off to 0 or infinity; the last good version "
            "stays. Fit on more customers or a longer history."
        )


@dataclass(frozen=True, slots=True)
class PurchaseModel:
    """A fitted purchase / dropout model: its kind, parameters and total log-likelihood."""

    kind: DropoutKind
    params: BgNbdParams | ParetoNbdParams
    log_likelihood: float

    def __post_init__(self) -> None:
        expected = ParetoNbdParams if self.kind == "pareto_nbd" else BgNbdParams
        if self.kind not in DROPOUT_KINDS or not isinstance(self.params, expected):
            raise ModelError(f"{self.kind!r} with {type(self.params).__name__} is not a model")

    def p_alive(self, x: npt.ArrayLike, t_x: npt.ArrayLike, T: npt.ArrayLike) -> FloatArray:
        """P(alive) at ``T`` (weeks since the first purchase), as a float64 array."""
        p = self.params
        if isinstance(p, ParetoNbdParams):
            return pareto_nbd_p_alive(p, x, t_x, T)
        xs, txs, ts = broadcast_floats(x, t_x, T)
        if self.kind == "mbgnbd":
            return mbgnbd_p_alive(p, xs, txs, ts)
        return p_alive(p, xs, txs, ts)

    def expected_purchases(
        self,
        t: npt.ArrayLike,
        x: npt.ArrayLike,
        t_x: npt.ArrayLike,
        T: npt.ArrayLike,
    ) -> FloatArray:
        """Expected purchases in ``(T, T+t]``, as a float64 array (arguments broadcast)."""
        p = self.params
        if isinstance(p, ParetoNbdParams):
            return pareto_nbd_expected_purchases(p, t, x, t_x, T)
        ts, xs, txs, big_t = broadcast_floats(t, x, t_x, T)
        if self.kind == "mbgnbd":
            return mbgnbd_expected_purchases(p, ts, xs, txs, big_t)
        return expected_purchases(p, ts, xs, txs, big_t)

    def crossing_weeks(self, x: int, t_x: float, threshold: float) -> float | None:
        """Weeks since the first purchase at which P(alive) falls to ``threshold`` with no
        further purchase; ``t_x`` when already below it, ``None`` when never (BG/NBD without a
        repeat purchase) or beyond float range. Plain float arithmetic for the closed forms
        (the timers call it per customer); Pareto/NBD solves for it numerically."""
        if not 0 < threshold < 1:
            raise ModelError("threshold must be strictly between 0 and 1.")
        p = self.params
        if isinstance(p, ParetoNbdParams):
            return _pareto_nbd_crossing(p, x, t_x, threshold)
        if self.kind == "bgnbd" and x <= 0:
            return None  # no repeat purchase: P(alive) stays 1 in BG/NBD
        b_x = p.b + x - (1 if self.kind == "bgnbd" else 0)
        s = (math.log((1.0 - threshold) / threshold) - math.log(p.a / b_x)) / (p.r + x)
        try:
            weeks = t_x + (p.alpha + t_x) * math.expm1(max(s, 0.0))
        except OverflowError:
            return None
        return weeks if math.isfinite(weeks) else None

    def to_dict(self) -> dict[str, Any]:
        """Kind, parameters and log-likelihood as plain JSON-ready values."""
        params = {k: float(getattr(self.params, k)) for k in self.params.__dataclass_fields__}
        return {"kind": self.kind, "params": params, "log_likelihood": self.log_likelihood}

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> PurchaseModel:
        """Read :meth:`to_dict` output (:class:`ModelError` when it is not such a model)."""
        kind = raw.get("kind")
        if kind not in DROPOUT_KINDS:
            raise ModelError(f"unknown purchase model kind {kind!r}; use one of {DROPOUT_KINDS}")
        params_type = ParetoNbdParams if kind == "pareto_nbd" else BgNbdParams
        return cls(kind, params_type(**raw["params"]), float(raw["log_likelihood"]))


def fit_purchase_model(
    kind: str,
    x: npt.ArrayLike,
    t_x: npt.ArrayLike,
    T: npt.ArrayLike,
) -> PurchaseModel:
    """Fit a model of ``kind`` by maximum likelihood; :class:`FitRejected` for a degenerate
    fit (not finite or positive log-likelihood, a parameter at its bound)."""
    if kind == "pareto_nbd":
        pareto = fit_pareto_nbd(x, t_x, T)
        check_fit(kind, pareto.log_likelihood, pareto.at_bound)
        return PurchaseModel("pareto_nbd", pareto.params, pareto.log_likelihood)
    if kind not in ("bgnbd", "mbgnbd"):
        raise ModelError(f"unknown purchase model kind {kind!r}; use one of {DROPOUT_KINDS}")
    fit = fit_bgnbd(x, t_x, T) if kind == "bgnbd" else fit_mbgnbd(x, t_x, T)
    check_fit(kind, fit.log_likelihood, fit.at_bound)
    return PurchaseModel("bgnbd" if kind == "bgnbd" else "mbgnbd", fit.params, fit.log_likelihood)


#: The timers ask for the same customer's crossing at every checkpoint of a silence and at its
#: due time (the profile, so the answer, has not changed); each is a root search over 2F1
#: evaluations, so answers are kept per (parameters, x, t_x, threshold): a pure function.
_pareto_nbd_crossing = functools.lru_cache(maxsize=16_384)(pareto_nbd_p_alive_crossing_time)
