"""The API's answer bodies (pure): the customer view carries the latest snapshot's value group,
cluster and churn fields; the docstring examples of the API's pure modules run."""

from __future__ import annotations

import doctest
from types import ModuleType

import pytest

from scorers.profile import Profile
from streams.api import policy, views
from streams.api.policy import Principal
from streams.api.queries import CustomerRecord
from streams.api.views import customer_view
from streams.state import query_index
from streams.state.query_index import CustomerIndex


@pytest.mark.parametrize("module", [query_index, policy, views], ids=lambda m: m.__name__)
def test_docstring_examples(module: ModuleType) -> None:
    failures, _ = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert failures == 0


def test_the_customer_view_has_value_group_cluster_and_churn() -> None:
    snapshot = {"segment": "Loyal", "churn_probability": 0.81, "churn_model_version": "7",
                "reasons": ["opens fell 80%"], "value_group": "high_value_at_risk",
                "cluster": 3, "probability_model_version": "2"}  # fmt: skip
    record = CustomerRecord("c", Profile(orders=2), CustomerIndex("Loyal"), snapshot, None,
                            frozenset())  # fmt: skip
    view = customer_view(record, Principal("k", "admin"))
    assert view["value_group"] == "high_value_at_risk" and view["cluster"] == 3
    assert view["churn_probability"] == 0.81 and view["reasons"] == ["opens fell 80%"]
    assert view["model_version"] == {"probability": "2", "churn": "7"}
    empty = customer_view(CustomerRecord("c", Profile(), CustomerIndex(), None, None, frozenset()),
                          Principal("k", "admin"))  # fmt: skip
    assert empty["value_group"] is None and empty["cluster"] is None and empty["scores"] is None
