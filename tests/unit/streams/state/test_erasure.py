"""The erasure's pure parts: suppression tags, the outbox filter, the key list, the secret."""

from __future__ import annotations

import pytest
import redis.asyncio as aioredis
from pydantic import SecretStr

from crm_core.errors import ConfigError
from crm_core.settings import Settings
from streams.round.messages import OutputMessage
from streams.state.due_index import DueIndex
from streams.state.erasure import _without, erasure_secret, suppression_tag
from streams.state.keys import Layout
from streams.state.outbox import OutputOutbox, _unpack


def test_the_tag_is_keyed_and_holds_no_id() -> None:
    tag = suppression_tag(b"secret", "cust-000042")
    assert tag == suppression_tag(b"secret", "cust-000042")
    assert tag != suppression_tag(b"other", "cust-000042")
    assert "000042" not in tag and len(tag) == 64


def test_without_a_key_the_erasure_says_how_to_make_one() -> None:
    with pytest.raises(ConfigError, match="CRM_ERASURE_KEY"):
        erasure_secret(Settings())
    assert erasure_secret(Settings(erasure_key=SecretStr("k"))) == b"k"


def test_the_outbox_filter_drops_exactly_the_customers_outputs() -> None:
    outbox = OutputOutbox(DueIndex(aioredis.Redis(), "t"))  # builds commands, never connects
    snapshots = [OutputMessage(0, c.encode(), f"s-{c}".encode()) for c in ("a", "b", "a", "ab")]
    examples = [OutputMessage(0, b"a", b"t-a"), OutputMessage(0, b"b", b"t-b")]
    ((_, _, _, blob),) = outbox.write_commands(snapshots, examples)
    assert isinstance(blob, bytes)

    kept, dropped = _without(blob, b"a")

    assert dropped == 3
    assert [(k, v) for _, k, v in _unpack(kept)] == [
        (b"b", b"s-b"),
        (b"ab", b"s-ab"),
        (b"b", b"t-b"),
    ]
    assert _without(blob, b"zz") == (blob, 0)


def test_every_key_of_a_customer_is_listed_once_under_its_hash_tag() -> None:
    keys = Layout("crm").customer_keys("c-1")
    assert all(k.startswith("crm:{c-1}:") for k in keys) and len(set(keys)) == len(keys)
    layout = Layout("crm")
    assert layout.profile("c-1") in keys and layout.contact("c-1") in keys
