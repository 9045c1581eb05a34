"""The API's access policy (every scope rule), masking per role, and keys: pure, no Redis."""

from __future__ import annotations

from pathlib import Path

import pytest

from crm_core.errors import ConfigError
from scorers.profile import Profile
from streams.api.auth import new_key, parse_key
from streams.api.policy import (
    CustomerAccess,
    DepartmentTree,
    Principal,
    Scope,
    mask_contact,
    mask_email,
    mask_name,
    mask_phone,
)
from streams.api.queries import CustomerRecord
from streams.api.server import DEFAULT_DEPARTMENTS
from streams.api.views import customer_view
from streams.state.query_index import CustomerIndex

TREE = DepartmentTree.from_mapping({"sales": {"emea": {"uk": None, "de": {}}, "amer": None}})
ADMIN = Principal("a", "admin")
SALES = Principal("m1", "manager", department="sales")
EMEA = Principal("m2", "manager", department="sales/emea")
AGENT = Principal("g1", "agent", identity="agent-1")
AGENT_PII = Principal("g2", "agent", identity="agent-2", granted=frozenset({"pii"}))

UK = CustomerAccess(departments=frozenset({"sales/emea/uk", "service/emea"}), owner="agent-1")
AMER = CustomerAccess(departments=frozenset({"sales/amer"}), shared_with=frozenset({"agent-2"}))
UNKNOWN_DEPT = CustomerAccess(departments=frozenset({"sales/emea/fr"}))
NOBODY = CustomerAccess()


def allows(principal: Principal, customer: CustomerAccess) -> bool:
    return Scope(principal, TREE).allows(customer)


def test_tree_paths_and_subtrees() -> None:
    assert TREE.departments == {
        "sales", "sales/emea", "sales/emea/uk", "sales/emea/de", "sales/amer",
    }  # fmt: skip
    assert TREE.subtree("sales/emea") == {"sales/emea", "sales/emea/uk", "sales/emea/de"}
    assert TREE.subtree("sales/amer") == {"sales/amer"}
    assert TREE.subtree("nowhere") == {"nowhere"}


def test_packaged_tree_covers_the_simulated_departments() -> None:
    tree = DepartmentTree.load(DEFAULT_DEPARTMENTS)
    for department in ("sales/emea/uk", "sales/amer/us", "sales/apac", "service/emea"):
        assert department in tree.departments


@pytest.mark.parametrize("text", ["[1, 2]", "sales: [a, b]", "'a/b': {}"])
def test_bad_trees_are_config_errors(tmp_path: Path, text: str) -> None:
    path = tmp_path / "departments.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError):
        DepartmentTree.load(path)


def test_admin_sees_everyone() -> None:
    assert all(allows(ADMIN, c) for c in (UK, AMER, UNKNOWN_DEPT, NOBODY))


def test_manager_sees_its_department_and_those_under_it() -> None:
    assert allows(SALES, UK) and allows(SALES, AMER)
    assert allows(EMEA, UK)  # sales/emea/uk is under sales/emea
    assert not allows(EMEA, AMER)  # a sibling
    assert not allows(EMEA, NOBODY)


def test_manager_does_not_see_departments_missing_from_the_tree() -> None:
    assert not allows(EMEA, UNKNOWN_DEPT)
    assert allows(Principal("m3", "manager", department="sales/emea/fr"), UNKNOWN_DEPT)


def test_agent_sees_owned_and_shared_customers_only() -> None:
    assert allows(AGENT, UK)  # owner
    assert not allows(AGENT, AMER)
    assert allows(AGENT_PII, AMER)  # shared with agent-2
    assert not allows(AGENT_PII, UK)
    assert not allows(AGENT, NOBODY)


def test_principals_are_validated() -> None:
    with pytest.raises(ConfigError):
        Principal("x", "manager")
    with pytest.raises(ConfigError):
        Principal("x", "agent")
    with pytest.raises(ConfigError):
        Principal("x", "root")  # type: ignore[arg-type]
    with pytest.raises(ConfigError):
        Principal("x", "admin", granted=frozenset({"everything"}))


def test_masks() -> None:
    assert mask_email("jane.doe@example.com") == "j***@example.com"
    assert mask_email("not-an-email") == "***"
    assert mask_name("Jane van Doe") == "J*** v*** D***"
    assert mask_phone("+1-555-0123") == "***23"


CONTACT: dict[str, str | None] = {
    "name": "Jane Doe",
    "email": "jane@example.com",
    "phone": "+1-555-0142",
    "address": "1 Main St",
}


@pytest.mark.parametrize(
    ("principal", "masked"),
    [(ADMIN, False), (SALES, True), (AGENT, True), (AGENT_PII, False)],
    ids=["admin", "manager", "agent", "agent-with-pii"],
)
def test_masking_per_role(principal: Principal, masked: bool) -> None:
    seen = mask_contact(CONTACT, principal)
    if masked:
        assert seen == {
            "name": "J*** D***",
            "email": "j***@example.com",
            "phone": "***42",
            "address": "***",
        }
    else:
        assert seen == CONTACT


def test_customer_view_masks_and_hides_shares_from_agents() -> None:
    record = CustomerRecord(
        "c-1",
        Profile(orders=2, gross_minor=500),
        CustomerIndex("Champions", {"purchase": "sales/emea/uk"}, "agent-1"),
        {"segment": "Champions", "clv": 1234.5, "p_alive": 0.9, "churn_probability": 0.1,
         "reasons": [], "churn_model_version": "3", "probability_model_version": "2"},
        CONTACT,
        frozenset({"agent-9"}),
    )  # fmt: skip
    as_agent = customer_view(record, AGENT)
    assert as_agent["contact"]["email"] == "j***@example.com"
    assert as_agent["shared_with"] is None
    assert as_agent["clv"] == 1234.5 and as_agent["model_version"]["churn"] == "3"
    assert as_agent["profile"]["monetary_minor"] == 500
    as_admin = customer_view(record, ADMIN)
    assert as_admin["contact"] == CONTACT and as_admin["shared_with"] == ["agent-9"]


def test_keys_are_stored_as_digests_and_checked_exactly() -> None:
    key, record = new_key(Principal("", "manager", department="sales"))
    assert parse_key(key) == record.principal.key_id
    assert key not in record.to_json().decode()
    assert record.matches(key)
    assert not record.matches(key[:-1] + ("A" if key[-1] != "A" else "B"))
    assert parse_key("crm_nothex_abc") is None
