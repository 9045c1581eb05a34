"""Marketing consent: who may be contacted, and which alerts are marketing actions.

A customer stops being contactable with a ``message_unsubscribed`` or ``consent_withdrawn``
event (both raise the profile's ``last_unsubscribe_at``) and is contactable again after a later
``consent_given`` (it raises ``last_consent_at``): the newest of the two, in event time, decides;
a withdrawal and an opt-in in the same second leave the customer not contactable. Both are
maxima, so the answer does not depend on the order events arrive in, and replay gives what live
gave. Scores keep updating either way: consent is about contacting, not about scoring.

Marketing-action alerts (``win_back``, ``cross_sell``) ask someone to contact the customer with an
offer; for a customer who is not contactable they are not published unless
``CRM_MARKETING_ALERTS_WHEN_NOT_CONTACTABLE`` asks for them. Every other alert is published and
says ``contactable`` so its reader knows.

>>> from scorers.profile import Profile
>>> contactable(Profile()), contactable(Profile(last_unsubscribe_at=1_700_000_000))
(True, False)
>>> contactable(Profile(last_unsubscribe_at=1_700_000_000, last_consent_at=1_700_000_060))
True
>>> publishable(AlertType.WIN_BACK, contactable=False)
False
>>> publishable(AlertType.CHURN_RISK, contactable=False)
True
"""

from __future__ import annotations

from schemas.outputs import AlertType
from scorers.profile import Profile

__all__ = ["MARKETING_ACTIONS", "contactable", "publishable"]

#: Alerts that ask for a marketing contact with the customer.
MARKETING_ACTIONS: frozenset[AlertType] = frozenset({AlertType.WIN_BACK, AlertType.CROSS_SELL})


def contactable(profile: Profile) -> bool:
    """Whether marketing may contact the customer: no unsubscribe or consent withdrawal, or
    consent given again after the last one."""
    withdrawn, given = profile.last_unsubscribe_at, profile.last_consent_at
    return withdrawn is None or (given is not None and given > withdrawn)


def publishable(alert_type: AlertType, *, contactable: bool, when_not: bool = False) -> bool:
    """Whether an alert of ``alert_type`` is published for a customer who is (not)
    ``contactable``; ``when_not``: publish marketing actions for them too (the setting)."""
    return contactable or when_not or alert_type not in MARKETING_ACTIONS
