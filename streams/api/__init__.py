"""The query API (the read side), its access policy, audit trail and the ops page.

It reads what the round writes for it (:mod:`streams.state.query_index`, keys in
:mod:`streams.state.keys`).

Import what you need from its module; this package re-exports the pieces a deployment uses.
"""

from streams.api.audit import AuditEntry, AuditLog
from streams.api.auth import KeyStore
from streams.api.policy import DepartmentTree, Principal, Scope, mask_contact
from streams.api.server import build_api, mount_api, run_api

__all__ = [
    "AuditEntry",
    "AuditLog",
    "DepartmentTree",
    "KeyStore",
    "Principal",
    "Scope",
    "build_api",
    "mask_contact",
    "mount_api",
    "run_api",
]
