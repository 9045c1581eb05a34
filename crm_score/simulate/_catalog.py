"""The simulated shop: product catalogue, co-purchase baskets, channels and organisation."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

__all__ = [
    "BASKETS",
    "BASKET_WEIGHTS",
    "CAMPAIGNS",
    "CHANNELS",
    "CHANNEL_WEIGHTS",
    "REGIONS",
    "CampaignPlan",
    "Catalog",
    "build_catalog",
]

#: Category -> (median unit price in minor units, number of SKUs).
_CATEGORIES: dict[str, tuple[int, int]] = {
    "ink": (2_900, 8),
    "paper": (899, 5),
    "printers": (17_900, 4),
    "laptops": (89_900, 5),
    "accessories": (2_499, 10),
    "furniture": (24_900, 6),
    "coffee": (1_499, 6),
    "cleaning": (999, 6),
    "storage": (1_999, 6),
    "software": (11_900, 4),
}

#: Co-purchase structure: a basket type and the probability each of its categories is in an order.
#: Ink buyers usually also buy paper; coffee goes with cleaning supplies.
BASKETS: tuple[tuple[str, tuple[tuple[str, float], ...]], ...] = (
    ("print", (("ink", 0.9), ("paper", 0.7), ("printers", 0.08))),
    ("office", (("paper", 0.5), ("storage", 0.5), ("accessories", 0.4), ("furniture", 0.12))),
    ("tech", (("accessories", 0.7), ("software", 0.35), ("laptops", 0.25))),
    ("breakroom", (("coffee", 0.85), ("cleaning", 0.6), ("paper", 0.2))),
)
#: Population share of each basket type (the Dirichlet prior of a customer's basket mix).
BASKET_WEIGHTS: tuple[float, ...] = (0.35, 0.3, 0.15, 0.2)

CHANNELS: tuple[str, ...] = ("web", "app", "store", "phone", "marketplace", "other")
CHANNEL_WEIGHTS: tuple[float, ...] = (0.45, 0.22, 0.15, 0.06, 0.10, 0.02)

#: Region -> (population share, [(country sub-department, share within the region), ...]).
REGIONS: tuple[tuple[str, float, tuple[tuple[str, float], ...]], ...] = (
    ("emea", 0.4, (("uk", 0.35), ("de", 0.25))),
    ("amer", 0.45, (("us", 0.7),)),
    ("apac", 0.15, ()),
)


@dataclass(frozen=True, slots=True)
class CampaignPlan:
    """A recurring campaign: every ``every_days``, to an ``audience`` share of those eligible."""

    name: str
    channel: str
    every_days: float
    first_day: float
    audience: float


CAMPAIGNS: tuple[CampaignPlan, ...] = (
    CampaignPlan("newsletter", "email", 7.0, 1.4, 0.33),
    CampaignPlan("promo", "sms", 28.0, 10.6, 0.5),
    CampaignPlan("app", "push", 14.0, 4.8, 0.4),
)


@dataclass(frozen=True, slots=True)
class Catalog:
    """SKUs per category, with unit prices sorted ascending."""

    categories: tuple[str, ...]
    skus: tuple[tuple[str, ...], ...]
    prices: tuple[tuple[int, ...], ...]

    def index(self, category: str) -> int:
        """Position of ``category`` in :attr:`categories`."""
        return self.categories.index(category)

    def cheapest(self) -> npt.NDArray[np.int64]:
        """Cheapest unit price per category."""
        return np.array([p[0] for p in self.prices], dtype=np.int64)


def build_catalog(rng: np.random.Generator) -> Catalog:
    """Draw SKU prices around each category's median (log-normal, sd 0.5)."""
    skus: list[tuple[str, ...]] = []
    prices: list[tuple[int, ...]] = []
    for category, (median, count) in _CATEGORIES.items():
        draws = np.sort(median * rng.lognormal(0.0, 0.5, size=count))
        rounded = (np.round(draws / 100.0) * 100 - 1).clip(min=99).astype(np.int64)
        prices.append(tuple(int(p) for p in rounded))
        skus.append(tuple(f"{category[:3].upper()}-{k + 1:03d}" for k in range(count)))
    return Catalog(tuple(_CATEGORIES), tuple(skus), tuple(prices))
