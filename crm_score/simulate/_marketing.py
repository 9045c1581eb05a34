"""Campaign sends and the customer's reactions; engagement fades before drop-out."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import numpy.typing as npt

from ._catalog import CAMPAIGNS, CampaignPlan
from ._config import SimulationConfig
from ._population import Population
from ._purchases import PurchaseOutcome
from ._records import DAY, HOUR, MARKETING, EventRecord

__all__ = ["engagement", "simulate_marketing"]

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]
#: An online purchase within this time after a click is attributed to the click's message.
ATTRIBUTION_SECONDS = 5 * DAY


def engagement(t: FloatArray, dropout: FloatArray, window: float) -> FloatArray:
    """Multiplier of open/click propensity: 1 normally, falling to 0.3 at drop-out, then 0.05.

    >>> engagement(np.array([0.0, 50.0, 100.0, 200.0]), np.full(4, 100.0), 100.0).round(2).tolist()
    [1.0, 0.65, 0.3, 0.05]
    """
    before = dropout - t
    fading = 0.3 + 0.7 * np.clip(before / window, 0.0, 1.0)
    out = np.where(before < 0, 0.05, fading)
    return np.where(np.isnan(dropout), 1.0, out)


def _schedule(config: SimulationConfig) -> list[tuple[float, CampaignPlan]]:
    sends = []
    for plan in CAMPAIGNS:
        t = plan.first_day * DAY
        while t < config.horizon_seconds:
            sends.append((t, plan))
            t += plan.every_days * DAY
    return sorted(sends, key=lambda s: (s[0], s[1].name))


def _message_records(
    c: int, payload: dict[str, str], times: tuple[float, float, float, float, float],
    flags: tuple[bool, bool, bool], horizon: float,
) -> list[EventRecord]:  # fmt: skip
    sent, bounced_at, delivered_at, opened_at, clicked_at = times
    bounced, opened, clicked = flags
    events = [("message_sent", sent)]
    if bounced:
        events.append(("message_bounced", bounced_at))
    else:
        events.append(("message_delivered", delivered_at))
    if opened:
        events.append(("message_opened", opened_at))
    if clicked:
        events.append(("message_clicked", clicked_at))
    return [EventRecord(t, MARKETING, c, kind, payload) for kind, t in events if t < horizon]


def simulate_marketing(
    rng: np.random.Generator, pop: Population, out: PurchaseOutcome, config: SimulationConfig
) -> list[EventRecord]:
    """Periodic email/SMS/push campaigns, reactions, unsubscribes and attributed conversions.

    Opens and clicks follow a per-customer propensity times :func:`engagement`; unsubscribes
    are ten times as likely in the weeks before drop-out. An e-mail address that bounces hard
    is suppressed from later sends.
    """
    horizon, window = config.horizon_seconds, config.churn_signal_days * DAY
    n = len(pop)
    opt_in = {"email": pop.email_ok, "sms": pop.sms_ok, "push": pop.push_ok}
    unsubscribed = {ch: np.zeros(n, dtype=np.bool_) for ch in opt_in}
    suppressed = np.zeros(n, dtype=np.bool_)  # e-mail addresses that bounced hard
    clicks: list[tuple[int, float, dict[str, str]]] = []
    records: list[EventRecord] = []
    for number, (t_send, plan) in enumerate(_schedule(config)):
        ch = plan.channel
        day = (config.start + timedelta(seconds=t_send)).strftime("%Y%m%d")
        eligible = opt_in[ch] & ~unsubscribed[ch] & (pop.birth <= t_send)
        if ch == "email":
            eligible &= ~suppressed
        aud = np.flatnonzero(eligible & (rng.random(n) < plan.audience))
        k = aud.size
        sent = t_send + rng.random(k) * HOUR
        drop = out.dropout[aud]
        m = engagement(sent, drop, window)
        hard = pop.bad_email[aud] if ch == "email" else np.zeros(k, dtype=np.bool_)
        bounced = hard | (rng.random(k) < (0.012 if ch == "email" else 0.004))
        delivered_at = sent + rng.uniform(1.0, 90.0, size=k)
        open_p = {"email": 1.0, "sms": 0.0, "push": 0.3}[ch] * pop.open_prop[aud] * m
        opened = ~bounced & (rng.random(k) < open_p)
        click_p = pop.click_prop[aud] * m
        clicked = opened if ch == "email" else ~bounced if ch == "sms" else np.zeros(k, np.bool_)
        clicked = clicked & (rng.random(k) < click_p * (0.6 if ch == "sms" else 1.0))
        opened_at = delivered_at + rng.exponential(6 * HOUR, size=k)
        react = np.where(opened, opened_at, delivered_at)
        clicked_at = react + rng.exponential(5 * 60.0, size=k)
        after = ~np.isnan(drop) & (sent >= drop)
        before = ~np.isnan(drop) & (sent >= drop - window) & ~after
        unsub_p = np.where(before, 0.02, np.where(after, 0.008, 0.0015))
        unsub = ~bounced & (rng.random(k) < unsub_p)
        unsub_at = react + rng.exponential(HOUR, size=k)
        bounced_at = sent + rng.uniform(5.0, 300.0, size=k)
        suppressed[aud[hard]] = True
        unsubscribed[ch][aud[unsub]] = True

        columns = zip(
            aud.tolist(), sent.tolist(), bounced_at.tolist(), delivered_at.tolist(),
            opened_at.tolist(), clicked_at.tolist(), bounced.tolist(), opened.tolist(),
            clicked.tolist(), unsub.tolist(), unsub_at.tolist(), strict=True,
        )  # fmt: skip
        campaign_id = f"cmp-{day}-{plan.name}"
        for c, s, tb, td, to, tc, b, o, cl, u, tu in columns:
            payload = {"campaign_id": campaign_id, "message_id": f"msg-{number:04d}-{c:06d}",
                       "channel": ch}  # fmt: skip
            records += _message_records(c, payload, (s, tb, td, to, tc), (b, o, cl), horizon)
            if u and tu < horizon:
                records.append(EventRecord(tu, MARKETING, c, "message_unsubscribed", payload))
            if cl and tc < horizon:
                clicks.append((c, tc, payload))
    records += _conversions(rng, clicks, out, horizon)
    return records


def _conversions(
    rng: np.random.Generator,
    clicks: list[tuple[int, float, dict[str, str]]],
    out: PurchaseOutcome,
    horizon: float,
) -> list[EventRecord]:
    """``message_converted`` for online orders placed within 5 days after a click (last click)."""
    if not clicks:
        return []
    clicks.sort(key=lambda c: (c[0], c[1]))
    stride = horizon + 10 * DAY
    click_key = np.array([c * stride + t for c, t, _ in clicks])
    online = np.flatnonzero(out.order_online)
    order_t = out.order_time[online]
    order_key = out.order_customer[online] * stride + order_t
    last = np.searchsorted(click_key, order_key, side="right") - 1
    ok = (last >= 0) & (order_key - click_key[np.maximum(last, 0)] <= ATTRIBUTION_SECONDS)
    delay = rng.uniform(60.0, 900.0, size=online.size)
    records: list[EventRecord] = []
    used: set[int] = set()
    for j in np.flatnonzero(ok).tolist():
        idx = int(last[j])
        t = float(order_t[j] + delay[j])
        if idx in used or t >= horizon:
            continue
        used.add(idx)
        c, _, payload = clicks[idx]
        records.append(EventRecord(t, MARKETING, c, "message_converted", payload))
    return records
