"""What ``crm-score fit`` prints: the fitted models in the papers' notation, as JSON-ready data.

``bgnbd`` is always there (BG/NBD, Fader, Hardie & Lee 2005), ``gamma_gamma`` is the spend
model in the paper's ``p, q, gamma`` (``None`` without enough repeat buyers), and
``dropout_model`` the model scores come from (``CRM_DROPOUT_MODEL``) with its parameters.
Rates are per ``time_unit``.

Examples
--------
>>> from datetime import UTC, datetime
>>> from scorers.bgnbd import BgNbdParams
>>> from scorers.gamma_gamma import GammaGammaParams
>>> model = ProbabilityModel(
...     "3", datetime(1997, 9, 30, tzinfo=UTC), BgNbdParams(0.243, 4.414, 0.793, 2.426),
...     GammaGammaParams(6.25, 3.74, 15.44), n_customers=2357, log_likelihood=-9582.4,
... )
>>> report = fit_report(model)
>>> report["bgnbd"]["time_unit"], report["gamma_gamma"], report["dropout_model"]["kind"]
('week', {'p': 6.25, 'q': 3.74, 'gamma': 15.44}, 'bgnbd')
"""

from __future__ import annotations

from typing import Any

from scorers.probability import ProbabilityModel

__all__ = ["TIME_UNIT", "fit_report"]

#: The unit of every fitted time and rate (``alpha`` and ``beta`` are in it, T and t_x too).
TIME_UNIT = "week"


def fit_report(model: ProbabilityModel) -> dict[str, Any]:
    """The JSON ``crm-score fit`` prints for a published model."""
    bg = model.bgnbd
    gg = model.gamma_gamma
    return {
        "version": int(model.version) if model.version.isdigit() else model.version,
        "fitted_at": model.fitted_at.isoformat(),
        "customers": model.n_customers,
        "n_customers": model.n_customers,
        "bgnbd": {
            "r": bg.r,
            "alpha": bg.alpha,
            "a": bg.a,
            "b": bg.b,
            "log_likelihood": model.log_likelihood,
            "time_unit": TIME_UNIT,
            "converged": model.converged,
        },
        "gamma_gamma": None if gg is None else {"p": gg.p, "q": gg.q, "gamma": gg.v},
        "dropout_model": {**model.scoring.to_dict(), "time_unit": TIME_UNIT},
        "high_value_clv": model.high_value_clv,
        "discount_rate_annual": model.discount_rate_annual,
        "clv_horizon_weeks": model.clv_horizon_weeks,
        "minor_per_major": model.minor_per_major,
    }
