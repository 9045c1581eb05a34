"""A seeded, realistic simulation of a shop's purchase, help-desk and marketing events.

Customers buy as in a BG/NBD model (Gamma-distributed rates, a Beta-distributed chance to drop
out after each purchase), spend as in a gamma-gamma model, buy categories in co-purchase
baskets, return ~5% of orders, complain and disengage in the weeks before they drop out, and
react to periodic campaigns. :func:`simulate` returns a :class:`Simulation`: iterate it for
:class:`SimulatedMessage` objects in arrival order, and read ``truth`` for the latent
per-customer parameters. Fault injection (malformed messages, duplicates, late events) is set
on :class:`SimulationConfig`, and so are purchase anomalies with their ground truth
(``anomaly_fraction``; :meth:`Simulation.anomaly_truth`).

Examples
--------
>>> sim = simulate(SimulationConfig(customers=50, days=90, seed=3, malformed_fraction=0.01))
>>> sum(m.fault in MALFORMATIONS for m in sim) == sim.summary()["malformed"]
True
"""

from ._anomalies import ANOMALY_KINDS, InjectedAnomaly
from ._config import SimulationConfig
from ._engine import Simulation, simulate
from ._marketing import engagement
from ._model import (
    DUPLICATE,
    MALFORMATION_REASONS,
    MALFORMATIONS,
    CustomerTruth,
    SimulatedMessage,
    write_ground_truth,
)

__all__ = [
    "ANOMALY_KINDS",
    "DUPLICATE",
    "MALFORMATIONS",
    "MALFORMATION_REASONS",
    "CustomerTruth",
    "InjectedAnomaly",
    "SimulatedMessage",
    "Simulation",
    "SimulationConfig",
    "engagement",
    "simulate",
    "write_ground_truth",
]
