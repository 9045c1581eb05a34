"""Every Redis key is spelled in ``streams/state/keys.py`` and nowhere else."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from streams.state.keys import Layout

ROOT = Path(__file__).resolve().parents[2]
KEYS = ROOT / "streams" / "state" / "keys.py"
SOURCES = sorted(
    path for package in ("streams", "crm_score") for path in (ROOT / package).rglob("*.py")
)


def _hash_tags(path: Path) -> list[int]:
    """Lines of f-strings that spell a hash tag (``:{``), the mark of a key name."""
    lines = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.JoinedStr):
            text = "".join(str(v.value) for v in node.values if isinstance(v, ast.Constant))
            if ":{" in text:
                lines.append(node.lineno)
    return lines


def test_the_key_module_spells_keys() -> None:
    assert _hash_tags(KEYS) != []


@pytest.mark.parametrize("path", [p for p in SOURCES if p != KEYS], ids=lambda p: p.name)
def test_no_other_module_spells_a_key(path: Path) -> None:
    assert _hash_tags(path) == [], f"{path} spells a Redis key; add it to streams/state/keys.py"


def test_a_customers_keys_share_its_hash_tag_and_a_partitions_keys_theirs() -> None:
    keys = Layout("crm")
    customer = [
        keys.profile("c-1"),
        keys.seen("c-1"),
        keys.journal("c-1"),
        keys.alert_claims("c-1"),
    ]
    customer += [keys.cross_sell("c-1"), keys.snapshot("c-1"), keys.contact("c-1")]
    assert {k.split(":", 2)[1] for k in customer} == {"{c-1}"}
    assert len(set(customer)) == len(customer)
    partition = [keys.due(3), keys.due_inflight(3), keys.watermark(3), keys.alert_outbox(3)]
    partition.append(keys.output_outbox(3))
    assert all(k.startswith("crm:{due:3}") for k in partition)
    assert len(set(partition)) == len(partition)


def test_the_profile_pattern_escapes_the_prefix() -> None:
    assert Layout("a*b").profile_pattern() == "a\\*b:{*}:p"
