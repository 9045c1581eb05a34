"""Re-encrypting every stored contact under the first key of ``CRM_PII_KEYS``
(``crm-score rotate-pii-key``), while workers run.

It walks the contact keys (``SCAN``), and each value not sealed with the first key (an older
key's, or plain JSON stored before encryption) is opened and sealed again, then written back
only if the key still holds what was read (a compare-and-set script): a worker that wrote newer
contact details meanwhile, or an erasure that deleted them, wins. Running it again is harmless.

Once it reports nothing left under an old key (``old_keys`` empty), that key may leave
``CRM_PII_KEYS``. The API index's digest of each contact is keyed by the encrypting key, so a
customer's next event with contact details writes them once more (sealed with the same key).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import redis.asyncio as aioredis
from redis.commands.core import AsyncScript

from crm_core.errors import ConfigError, DecryptionError
from streams.state.fenced import fenced_set
from streams.state.keys import Layout
from streams.state.pii import PiiCipher, key_id
from streams.state.profiles import get_many

__all__ = ["RotationReport", "rotate_contacts"]

_CHUNK = 500


@dataclass
class RotationReport:
    """What one rotation did."""

    key_id: str
    scanned: int = 0
    re_encrypted: int = 0
    already_current: int = 0
    changed_meanwhile: int = 0  # written or erased by someone else between read and swap
    #: values found sealed with each key other than the current one (``plain``: none)
    old_keys: Counter[str] = field(default_factory=Counter)
    #: customers whose contact does not decrypt (altered, or its key is not listed)
    unreadable: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, object]:
        """As JSON for the CLI."""
        return {
            "key_id": self.key_id,
            "scanned": self.scanned,
            "re_encrypted": self.re_encrypted,
            "already_current": self.already_current,
            "changed_meanwhile": self.changed_meanwhile,
            "found_under_old_keys": dict(self.old_keys),
            "unreadable": self.unreadable,
        }


async def rotate_contacts(
    client: aioredis.Redis, layout: Layout, cipher: PiiCipher, chunk: int = _CHUNK
) -> RotationReport:
    """Seal every stored contact with ``cipher``'s first key; see the module doc."""
    if cipher.current is None:
        raise ConfigError(
            "CRM_PII_KEYS is not set: there is no key to encrypt the contact details with; "
            "set it (the new key first) and run the command again"
        )
    report = RotationReport(cipher.current)
    swap = fenced_set(client)  # the contact is its own guard: a compare-and-set
    # Loaded up front (on every master of a cluster): a cluster pipeline does not load the
    # scripts it runs, as a single Redis's does.
    await client.script_load(swap.script)
    keys: list[bytes] = []
    async for key in client.scan_iter(match=layout.contact_pattern(), count=chunk):
        keys.append(key)
        if len(keys) >= chunk:
            await _rotate(client, swap, layout, cipher, keys, report)
            keys = []
    if keys:
        await _rotate(client, swap, layout, cipher, keys, report)
    return report


async def _rotate(
    client: aioredis.Redis,
    swap: AsyncScript,
    layout: Layout,
    cipher: PiiCipher,
    keys: list[bytes],
    report: RotationReport,
) -> None:
    """Rotate one chunk of contact keys."""
    values = await get_many(client, keys)
    async with client.pipeline(transaction=False) as pipe:
        queued = 0
        for key, value in zip(keys, values, strict=True):
            if value is None:  # erased since the scan saw it
                continue
            report.scanned += 1
            kid = key_id(value)
            if kid == cipher.current:
                report.already_current += 1
                continue
            report.old_keys[kid or "plain"] += 1
            customer = layout.customer_of(key.decode())
            try:
                sealed = cipher.seal(customer, cipher.open(customer, value))
            except DecryptionError:
                report.unreadable.append(customer)
                continue
            await swap(keys=[key, key], args=[value, sealed], client=pipe)
            queued += 1
        swapped = await pipe.execute() if queued else []
    done = sum(int(s) for s in swapped)
    report.re_encrypted += done
    report.changed_meanwhile += queued - done
