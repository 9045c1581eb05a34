"""The customer population: latent behaviour parameters drawn once per customer."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from ._catalog import BASKET_WEIGHTS, CHANNEL_WEIGHTS, REGIONS
from ._config import SimulationConfig
from ._people import draw_contacts

__all__ = ["Population", "draw_population"]

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]


@dataclass(frozen=True, slots=True, eq=False)
class Population:
    """Per-customer parameters, as parallel arrays indexed by customer number.

    Times are seconds since the simulation start; rates are per day; money is minor units.
    """

    ids: list[str]
    keys: list[bytes]
    birth: FloatArray
    rate: FloatArray
    dropout_p: FloatArray
    spend: FloatArray
    basket_cdf: FloatArray
    channel_cdf: FloatArray
    region: list[str]
    #: Department per kind code (purchase, service, marketing) and customer.
    departments: tuple[list[str], list[str], list[str]]
    #: ``{"owner": "agent-N"}`` for key accounts with a sales owner, else ``None``.
    sales_owner: list[dict[str, str] | None]
    contact: list[dict[str, str]]
    email_ok: BoolArray
    sms_ok: BoolArray
    push_ok: BoolArray
    bad_email: BoolArray
    open_prop: FloatArray
    click_prop: FloatArray
    ticket_rate: FloatArray

    def __len__(self) -> int:
        return len(self.ids)


def _pick(rng: np.random.Generator, weights: tuple[float, ...], n: int) -> npt.NDArray[np.intp]:
    cdf = np.cumsum(weights) / sum(weights)
    return np.searchsorted(cdf, rng.random(n), side="right").clip(max=len(weights) - 1)


def _departments(
    rng: np.random.Generator, n: int
) -> tuple[list[str], tuple[list[str], list[str], list[str]]]:
    region_idx = _pick(rng, tuple(w for _, w, _ in REGIONS), n).tolist()
    u = rng.random(n).tolist()
    regions: list[str] = []
    sales: list[str] = []
    for i in range(n):
        name, _, countries = REGIONS[region_idx[i]]
        regions.append(name)
        department, acc = f"sales/{name}", 0.0
        for country, share in countries:
            acc += share
            if u[i] < acc:
                department = f"sales/{name}/{country}"
                break
        sales.append(department)
    service = [f"service/{r}" for r in regions]
    marketing = [f"marketing/{r}" for r in regions]
    return regions, (sales, service, marketing)


def draw_population(rng: np.random.Generator, config: SimulationConfig) -> Population:
    """Draw ``config.customers`` customers.

    Purchase rates are Gamma distributed (BG/NBD-like), the drop-out probability after each
    purchase is Beta distributed, and each customer's mean order value is Gamma distributed
    around the population mean (gamma-gamma-like).
    """
    n = config.customers
    ids = [f"{config.id_prefix}{i:06d}" for i in range(n)]
    new = rng.random(n) < config.new_customer_fraction
    birth = np.where(new, rng.random(n) * config.horizon_seconds, 0.0)
    shape = config.purchase_rate_shape
    rate = rng.gamma(shape, config.mean_purchases_per_year / shape / 365.0, size=n)
    dropout_p = rng.beta(*config.dropout_beta, size=n).clip(1e-4, 0.999)
    spend = config.mean_order_value_minor * rng.gamma(config.spend_shape, 1.0, size=n)
    spend /= config.spend_shape
    basket = rng.dirichlet(2.0 * np.asarray(BASKET_WEIGHTS), size=n)
    channel = rng.dirichlet(3.0 * np.asarray(CHANNEL_WEIGHTS), size=n)
    regions, departments = _departments(rng, n)
    has_owner = (rng.random(n) < 0.25).tolist()
    agent = rng.integers(1, 21, size=n).tolist()
    owners = [{"owner": f"agent-{agent[i]}"} if has_owner[i] else None for i in range(n)]
    return Population(
        ids=ids,
        keys=[i.encode() for i in ids],
        birth=birth,
        rate=rate,
        dropout_p=dropout_p,
        spend=spend,
        basket_cdf=np.cumsum(basket, axis=1),
        channel_cdf=np.cumsum(channel, axis=1),
        region=regions,
        departments=departments,
        sales_owner=owners,
        contact=draw_contacts(rng, regions),
        email_ok=rng.random(n) < 0.9,
        sms_ok=rng.random(n) < 0.35,
        push_ok=rng.random(n) < 0.4,
        bad_email=rng.random(n) < 0.025,
        open_prop=rng.beta(2.0, 6.0, size=n),
        click_prop=rng.beta(1.5, 8.0, size=n),
        ticket_rate=rng.gamma(1.0, 0.6 / 365.0, size=n),
    )


def row_pick(cdf: FloatArray, rows: npt.NDArray[np.intp], u: FloatArray) -> npt.NDArray[np.intp]:
    """For each ``rows[k]``, the category whose cumulative weight first exceeds ``u[k]``."""
    picked = (u[:, None] > cdf[rows]).sum(axis=1)
    out: npt.NDArray[np.intp] = np.minimum(picked, cdf.shape[1] - 1)
    return out
