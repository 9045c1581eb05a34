"""Contact details (PII) encrypted at rest: AES-256-GCM under rotating keys.

``CRM_PII_KEYS`` lists the keys as ``id:base64,id:base64`` (each key 32 random bytes, base64;
an id is 1-32 letters, digits, ``-`` or ``_``). The first key encrypts; every listed key
decrypts, so a key is rotated by putting a new one first and running ``crm-score
rotate-pii-key``, which re-encrypts every stored value under it (:mod:`streams.state.pii_rotation`).

A stored value is ``0x01``, the key id's length (one byte), the key id, a 12-byte random
nonce, and the ciphertext with its 16-byte tag. The customer id is the associated data: a
value copied under another customer's key does not decrypt, and neither does one altered by
a single bit. A value stored before encryption (JSON, which starts with ``{``) still reads.

Without keys (``CRM_ENVIRONMENT=dev`` only) the cipher is *plain*: values are stored as JSON,
as they were before. The round writes a customer's contact only when it changed, which it tells
by a digest in the customer's API index: keyed (BLAKE2b under a key derived from the
encrypting key) when encrypting, so the index does not let anyone confirm a guessed address.

Examples
--------
>>> cipher = PiiCipher([("k1", bytes(32))])
>>> stored = cipher.seal("c-1", b'{"email":"ada@example.com"}')
>>> b"ada" in stored, cipher.open("c-1", stored)
(False, b'{"email":"ada@example.com"}')
>>> key_id(stored), key_id(b'{"email":"ada@example.com"}')
('k1', None)
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import re
from collections.abc import Sequence

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from crm_core.errors import ConfigError, DecryptionError
from crm_core.settings import Settings

__all__ = ["MAKE_KEY", "PLAIN", "PiiCipher", "key_id", "parse_keys"]

#: A shell command that prints a new key entry for ``CRM_PII_KEYS``.
MAKE_KEY = (
    "python -c \"import base64,os; print('k1:' + base64.b64encode(os.urandom(32)).decode())\""
)
_FORMAT = 1  # first byte of an encrypted value
_NONCE = 12
_KEY_ID = re.compile(r"[A-Za-z0-9_-]{1,32}")
_AAD = b"crm-pii/1\x1f"


def parse_keys(text: str) -> list[tuple[str, bytes]]:
    """``id:base64,id:base64`` as (id, 32-byte key) pairs; ConfigError says what is wrong.

    >>> parse_keys("a:" + "A" * 43 + "=")[0][0]
    'a'
    """
    keys: list[tuple[str, bytes]] = []
    for entry in (e.strip() for e in text.split(",")):
        if not entry:
            continue
        kid, sep, encoded = entry.partition(":")
        if not sep or not _KEY_ID.fullmatch(kid):
            raise ConfigError(
                "CRM_PII_KEYS must be id:key pairs separated by commas, an id being 1-32 "
                f"letters, digits, '-' or '_'; make a key with {MAKE_KEY}"
            )
        try:
            key = base64.b64decode(encoded, validate=True)
        except binascii.Error:
            key = b""
        if len(key) != 32:
            raise ConfigError(
                f"CRM_PII_KEYS: key {kid!r} is not 32 bytes of base64; make one with {MAKE_KEY}"
            )
        if any(kid == k for k, _ in keys):
            raise ConfigError(f"CRM_PII_KEYS: key id {kid!r} is listed twice; ids must differ")
        keys.append((kid, key))
    return keys


def key_id(stored: bytes) -> str | None:
    """The id of the key ``stored`` was encrypted with; None for a plain value."""
    if not stored or stored[0] != _FORMAT:
        return None
    return stored[2 : 2 + stored[1]].decode()


class PiiCipher:
    """Seals and opens one customer's contact details; ``keys`` empty: plain (dev mode)."""

    def __init__(self, keys: Sequence[tuple[str, bytes]]) -> None:
        self._aead = {kid: AESGCM(key) for kid, key in keys}
        self.current: str | None = keys[0][0] if keys else None
        self._header = b"" if self.current is None else self._header_of(self.current)
        # The index digest's key, derived from the encrypting key (not the key itself).
        self._digest_key = (
            b"" if not keys else hashlib.blake2b(keys[0][1], person=b"crm-pii-index").digest()
        )

    @classmethod
    def from_settings(cls, settings: Settings) -> PiiCipher:
        """The cipher ``CRM_PII_KEYS`` describes. ConfigError when the keys are malformed, or
        when ``CRM_ENVIRONMENT=production`` and none is set (dev mode: plain, see
        :attr:`status`)."""
        text = "" if settings.pii_keys is None else settings.pii_keys.get_secret_value()
        keys = parse_keys(text)
        if not keys and settings.environment == "production":
            raise ConfigError(
                "CRM_ENVIRONMENT=production needs CRM_PII_KEYS: contact details are stored "
                f"encrypted. Make a key with {MAKE_KEY} and set CRM_PII_KEYS to what it "
                "prints, the same for every worker and tool (keep it: without it the stored "
                "contact details cannot be read)"
            )
        return cls(keys)

    @property
    def status(self) -> str:
        """What ``/health`` says about encryption at rest."""
        if self.current is None:
            return "off: CRM_PII_KEYS is not set (dev mode), contact details are stored in plain"
        return f"on: AES-256-GCM, encrypting with key {self.current}"

    def digest(self, plain: bytes) -> str:
        """A short digest of ``plain`` for the API index (to tell a changed contact): keyed
        when encrypting, so it reveals nothing without the key."""
        return hashlib.blake2b(plain, digest_size=8, key=self._digest_key).hexdigest()

    def seal(self, customer_id: str, plain: bytes) -> bytes:
        """``plain`` as stored for ``customer_id``: encrypted with the first key, or as it is
        when there is none."""
        if self.current is None:
            return plain
        nonce = os.urandom(_NONCE)
        sealed = self._aead[self.current].encrypt(nonce, plain, _AAD + customer_id.encode())
        return self._header + nonce + sealed

    def open(self, customer_id: str, stored: bytes) -> bytes:
        """What :meth:`seal` was given. A plain value (stored before encryption, or in dev
        mode) is returned as it is; DecryptionError says why one cannot be read."""
        kid = key_id(stored)
        if kid is None:
            return stored
        aead = self._aead.get(kid)
        if aead is None:
            listed = ", ".join(self._aead) or "none"
            raise DecryptionError(
                f"the contact details of {customer_id!r} are encrypted with key {kid!r}, which "
                f"CRM_PII_KEYS does not list (it lists: {listed}); add that key back"
            )
        start = 2 + stored[1]
        nonce, sealed = stored[start : start + _NONCE], stored[start + _NONCE :]
        try:
            return aead.decrypt(nonce, sealed, _AAD + customer_id.encode())
        except InvalidTag:
            raise DecryptionError(
                f"the contact details of {customer_id!r} do not decrypt with key {kid!r}: the "
                "stored value was altered, or copied from another customer, or CRM_PII_KEYS "
                f"holds another key under the id {kid!r}; erase or re-import the customer's "
                "contact, or restore the right key"
            ) from None

    @staticmethod
    def _header_of(kid: str) -> bytes:
        encoded = kid.encode()
        return bytes((_FORMAT, len(encoded))) + encoded


#: The cipher without keys (dev mode, tests, tools that write plain values).
PLAIN = PiiCipher([])
