"""The CDNOW research data set: loaders and the calibration-period summary the models fit on.

CDNOW (Fader, Hardie & Lee 2005) holds the CD purchases of the customers whose first purchase at
the CDNOW store fell in Q1 1997, observed to 1998-06-30. Its published BG/NBD and Gamma-Gamma
figures are the reference our scorers are tested against. This module reads files, so it lives
outside the pure ``scorers`` package. Money is ``float`` US dollars here, as in the source files.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pandas as pd

__all__ = [
    "CDNOW_EPOCH",
    "cdnow_events",
    "cdnow_holdout",
    "cdnow_summary",
    "load_cdnow_master",
    "load_cdnow_sample",
    "write_cdnow_events",
]

#: Day 0 of the CDNOW time axis (first day of the cohort's acquisition window).
CDNOW_EPOCH = pd.Timestamp("1997-01-01", tz="UTC")

_COLUMNS = ["customer_id", "date", "cds", "value"]


def _finish(raw: pd.DataFrame) -> pd.DataFrame:
    dates = pd.to_datetime(raw["date"].astype(str), format="%Y%m%d", utc=True)
    frame = pd.DataFrame(
        {
            "customer_id": raw["customer_id"].astype(np.int64),
            "date": dates,
            "cds": raw["cds"].astype(np.int64),
            "value": raw["value"].astype(np.float64),
        }
    )
    return frame.sort_values(["customer_id", "date"], kind="stable").reset_index(drop=True)


def load_cdnow_sample(path: str | Path) -> pd.DataFrame:
    """Read ``CDNOW_sample.txt`` (no header; id, sample index, YYYYMMDD, CDs, dollars).

    Returns one row per purchase record with columns ``customer_id`` (the master id),
    ``date`` (UTC midnight), ``cds`` and ``value`` (US dollars), sorted by customer and date.
    """
    raw = pd.read_csv(
        path,
        sep=r"\s+",
        header=None,
        names=["customer_id", "sample_id", "date", "cds", "value"],
        dtype={"customer_id": str, "sample_id": str, "date": str},
    )
    return _finish(raw)


def load_cdnow_master(path: str | Path) -> pd.DataFrame:
    """Read ``CDNOW_master.txt`` (header line; id, YYYYMMDD, CDs, dollars); same columns."""
    raw = pd.read_csv(
        path,
        sep=r"\s+",
        header=0,
        names=_COLUMNS,
        dtype={"customer_id": str, "date": str},
    )
    return _finish(raw)


def cdnow_summary(df: pd.DataFrame, calibration_end_week: int = 39) -> pd.DataFrame:
    """Per-customer ``x, t_x, T`` (weeks) and mean repeat-transaction value in calibration.

    Time is counted in days from 1997-01-01 (day 0). The calibration period is weeks
    ``1..calibration_end_week``, i.e. days ``0 .. 7*calibration_end_week - 1`` (39 weeks: up to
    and including 1997-09-30, day 272). Purchases on the same day are merged into one
    transaction (values summed). Per customer with a purchase in calibration:

    - ``x``: repeat transactions (transactions after the first) in calibration;
    - ``t_x``: last calibration transaction minus first, in weeks;
    - ``T``: last calibration day minus first purchase day, in weeks. Measuring to day 272
      (not 273) is what the published CDNOW summary does: a customer who started on 1997-01-01
      has ``T = 272/7 = 38.86``, and it is what reproduces the published log-likelihood;
    - ``mean_value``: mean dollar value of the repeat transactions in calibration (0.0 when
      ``x == 0``, so it carries no weight in Gamma-Gamma's posterior mean). The files hold a
      few $0.00 records, so a repeat buyer can have ``mean_value == 0`` (none in the sample,
      one in the master file); Gamma-Gamma refuses those, so drop them before fitting it.

    Returns a frame indexed by ``customer_id``, sorted.
    """
    day = (df["date"] - CDNOW_EPOCH).dt.days.to_numpy()
    end_day = 7 * calibration_end_week  # first day after calibration
    daily = (
        pd.DataFrame(
            {"customer_id": df["customer_id"].to_numpy(), "day": day, "value": df["value"]}
        )
        .loc[lambda d: d["day"] < end_day]
        .groupby(["customer_id", "day"], as_index=False, sort=True)["value"]
        .sum()
    )
    by_customer = daily.groupby("customer_id", sort=True)
    first = by_customer["day"].transform("min")
    repeat = daily[daily["day"] > first]
    stats = by_customer["day"].agg(first="min", last="max", n="size")
    mean_value = repeat.groupby("customer_id")["value"].mean()
    return pd.DataFrame(
        {
            "x": (stats["n"] - 1).astype(np.int64),
            "t_x": (stats["last"] - stats["first"]) / 7.0,
            "T": (end_day - 1 - stats["first"]) / 7.0,
            "mean_value": mean_value.reindex(stats.index, fill_value=0.0),
        }
    )


def cdnow_events(df: pd.DataFrame) -> Iterator[dict[str, Any]]:
    """Each CDNOW record as an ``order_placed`` event (JSON-ready dict) at UTC midnight of its
    day, for the amount in US cents: what the shop would have sent the pipeline. Records of one
    customer and day stay separate orders (the profile merges them into one transaction)."""
    for n, row in enumerate(df.itertuples(index=False)):
        customer = f"cdnow-{row.customer_id}"
        yield {
            "schema_version": 1,
            "event_id": f"{customer}-{n}",
            "customer_id": customer,
            "event_time": row.date.isoformat(),
            "source": "cdnow",
            "type": "order_placed",
            "payload": {
                "order_id": f"o-{n}",
                "amount_minor": round(float(row.value) * 100),
                "currency": "USD",
            },
        }


def write_cdnow_events(df: pd.DataFrame, path: Path) -> int:
    """Write :func:`cdnow_events` as JSONL (what ``crm-score fit --events`` reads); returns
    the number of events."""
    count = 0
    with path.open("wb") as fh:
        for event in cdnow_events(df):
            fh.write(orjson.dumps(event) + b"\n")
            count += 1
    return count


def cdnow_holdout(
    df: pd.DataFrame, calibration_end_week: int = 39, holdout_weeks: int = 39
) -> pd.DataFrame:
    """Per customer of :func:`cdnow_summary`: ``holdout`` transactions (same-day records merged)
    in the ``holdout_weeks`` after calibration, and ``first_day`` of their first purchase (days
    since 1997-01-01); plus, in ``frame.attrs["weekly_repeats"]``, the cohort's repeat
    transactions in each week ``1 .. calibration_end_week + holdout_weeks`` (the tracking plot
    of Fader, Hardie & Lee 2005)."""
    day = (df["date"] - CDNOW_EPOCH).dt.days.to_numpy()
    daily = pd.DataFrame({"customer_id": df["customer_id"].to_numpy(), "day": day})
    daily = daily.drop_duplicates().sort_values(["customer_id", "day"])
    first = daily.groupby("customer_id")["day"].transform("min")
    start, end = 7 * calibration_end_week, 7 * (calibration_end_week + holdout_weeks)
    in_holdout = daily[(daily["day"] >= start) & (daily["day"] < end)]
    calibrated = cdnow_summary(df, calibration_end_week).index
    frame = pd.DataFrame(
        {
            "holdout": in_holdout.groupby("customer_id").size().reindex(calibrated, fill_value=0),
            "first_day": daily.groupby("customer_id")["day"].min().reindex(calibrated),
        }
    )
    repeats = daily.loc[daily["day"] > first, "day"]
    weeks = np.bincount(repeats.to_numpy() // 7, minlength=end // 7)[: end // 7]
    frame.attrs["weekly_repeats"] = weeks.astype(np.int64)
    return frame
