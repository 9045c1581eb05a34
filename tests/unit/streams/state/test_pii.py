"""Contact details encrypted at rest (streams/state/pii.py): round trip, wrong key, rotation,
tamper detection, plain values of an old store, the settings, and the round's contact write."""

from __future__ import annotations

import base64
import doctest
import os
from types import ModuleType

import orjson
import pytest
from pydantic import SecretStr

import streams.state.keys
import streams.state.pii
from crm_core.errors import ConfigError, DecryptionError
from crm_core.settings import Settings
from streams.state.keys import Layout
from streams.state.pii import PLAIN, PiiCipher, key_id, parse_keys
from streams.state.query_index import CustomerIndex, RoundIndexer
from tests.unit.hand_built import applied_event

CONTACT = orjson.dumps({"name": "Ada Lovelace", "email": "ada@example.com", "phone": "+1-555-0100"})


def _key() -> bytes:
    return os.urandom(32)


def _entry(kid: str, key: bytes) -> str:
    return f"{kid}:{base64.b64encode(key).decode()}"


def test_a_sealed_contact_opens_to_what_was_sealed_and_shows_none_of_it() -> None:
    cipher = PiiCipher([("k1", _key())])
    stored = cipher.seal("c-1", CONTACT)
    assert cipher.open("c-1", stored) == CONTACT
    assert b"ada" not in stored and b"Lovelace" not in stored and b"555" not in stored
    assert key_id(stored) == "k1"
    # a fresh nonce each time: the same contact never gives the same bytes twice
    assert cipher.seal("c-1", CONTACT) != stored


def test_another_key_under_the_same_id_is_refused() -> None:
    stored = PiiCipher([("k1", _key())]).seal("c-1", CONTACT)
    with pytest.raises(DecryptionError, match="do not decrypt with key 'k1'"):
        PiiCipher([("k1", _key())]).open("c-1", stored)


def test_a_key_id_missing_from_the_settings_says_which_to_add_back() -> None:
    stored = PiiCipher([("old", _key())]).seal("c-1", CONTACT)
    with pytest.raises(DecryptionError, match="key 'old', which CRM_PII_KEYS does not list"):
        PiiCipher([("new", _key())]).open("c-1", stored)


def test_a_rotated_key_list_reads_old_values_and_seals_with_the_first_key() -> None:
    old, new = _key(), _key()
    before = PiiCipher([("k1", old)]).seal("c-1", CONTACT)
    rotated = PiiCipher([("k2", new), ("k1", old)])
    assert rotated.open("c-1", before) == CONTACT
    resealed = rotated.seal("c-1", rotated.open("c-1", before))
    assert key_id(resealed) == "k2"
    assert PiiCipher([("k2", new)]).open("c-1", resealed) == CONTACT
    with pytest.raises(DecryptionError, match="does not list"):
        PiiCipher([("k2", new)]).open("c-1", before)


def test_any_altered_byte_and_a_value_copied_to_another_customer_are_detected() -> None:
    cipher = PiiCipher([("k1", _key())])
    stored = cipher.seal("c-1", CONTACT)
    header = 2 + len("k1")
    for at in range(header, len(stored)):  # nonce, ciphertext and tag
        altered = bytearray(stored)
        altered[at] ^= 0x01
        with pytest.raises(DecryptionError):
            cipher.open("c-1", bytes(altered))
    with pytest.raises(DecryptionError, match="copied from another customer"):
        cipher.open("c-2", stored)


def test_a_plain_value_of_an_old_store_still_reads() -> None:
    assert key_id(CONTACT) is None
    assert PiiCipher([("k1", _key())]).open("c-1", CONTACT) == CONTACT
    assert PLAIN.open("c-1", CONTACT) == CONTACT
    assert PLAIN.seal("c-1", CONTACT) == CONTACT


def test_the_key_list_is_parsed_and_a_bad_one_says_how_to_make_a_key() -> None:
    a, b = _key(), _key()
    assert parse_keys(f" {_entry('k2', b)} , {_entry('k1', a)} ") == [("k2", b), ("k1", a)]
    assert parse_keys("") == []
    for bad, says in [
        ("k1", "id:key pairs"),
        (f"bad id:{base64.b64encode(a).decode()}", "id:key pairs"),
        ("k1:" + base64.b64encode(a[:16]).decode(), "not 32 bytes"),
        ("k1:not base64!", "not 32 bytes"),
        (f"{_entry('k1', a)},{_entry('k1', b)}", "listed twice"),
    ]:
        with pytest.raises(ConfigError, match=says) as caught:
            parse_keys(bad)
        assert "os.urandom(32)" in str(caught.value) or says == "listed twice"


def test_production_without_keys_refuses_and_dev_stays_plain() -> None:
    with pytest.raises(ConfigError, match="CRM_ENVIRONMENT=production needs CRM_PII_KEYS"):
        PiiCipher.from_settings(Settings(environment="production"))
    dev = PiiCipher.from_settings(Settings())
    assert dev.current is None and dev.status.startswith("off: CRM_PII_KEYS is not set")
    keyed = Settings(environment="production", pii_keys=SecretStr(_entry("k9", _key())))
    cipher = PiiCipher.from_settings(keyed)
    assert cipher.current == "k9" and cipher.status == "on: AES-256-GCM, encrypting with key k9"
    assert "k9:" not in repr(keyed)


def test_the_index_digest_is_keyed_when_encrypting() -> None:
    key = _key()
    plain, keyed = PLAIN.digest(CONTACT), PiiCipher([("k1", key)]).digest(CONTACT)
    assert keyed != plain and keyed == PiiCipher([("k1", key)]).digest(CONTACT)
    assert keyed != PiiCipher([("k1", _key())]).digest(CONTACT)


def test_the_round_writes_the_contact_sealed_and_only_when_it_changed() -> None:
    layout, cipher = Layout("t"), PiiCipher([("k1", _key())])
    indexer = RoundIndexer(layout, cipher)
    contact = {"name": "Ada Lovelace", "email": "ada@example.com"}
    changed, commands = indexer.commands({}, [applied_event(100, contact=contact)], [])
    (write,) = [c for c in commands if c[0] == "SET"]
    assert write[1] == layout.contact("c") and isinstance(write[2], bytes)
    assert b"ada@example.com" not in write[2]
    assert orjson.loads(cipher.open("c", write[2])) == contact
    # the same contact again: nothing sealed or written; a new one is
    _, again = indexer.commands(changed, [applied_event(200, contact=contact)], [])
    assert not any(c[0] == "SET" for c in again)
    moved = {**contact, "email": "ada@example.org"}
    _, newer = indexer.commands(changed, [applied_event(300, contact=moved)], [])
    (write,) = [c for c in newer if c[0] == "SET"]
    assert isinstance(write[2], bytes) and orjson.loads(cipher.open("c", write[2])) == moved
    # an index digested without a key (dev mode, before encryption): written once, sealed
    plain_index, _ = RoundIndexer(layout).commands({}, [applied_event(100, contact=contact)], [])
    assert plain_index["c"] != CustomerIndex()
    _, upgrade = indexer.commands(plain_index, [applied_event(400, contact=contact)], [])
    (write,) = [c for c in upgrade if c[0] == "SET"]
    assert isinstance(write[2], bytes) and key_id(write[2]) == "k1"


@pytest.mark.parametrize("module", [streams.state.pii, streams.state.keys])
def test_doctests(module: ModuleType) -> None:
    failures, attempted = doctest.testmod(module)
    assert failures == 0 and attempted > 0
