"""The query API, its access policy, audit trail and the ops page.

Import what you need from its module; this package re-exports the pieces a deployment uses.
"""

from streams.api.audit import AuditEntry, AuditLog
from streams.api.auth import KeyStore
from streams.api.index import CustomerIndex, RoundIndexer
from streams.api.layout import Layout
from streams.api.policy import DepartmentTree, Principal, Scope, mask_contact
from streams.api.server import build_api, mount_api, run_api

__all__ = [
    "AuditEntry",
    "AuditLog",
    "CustomerIndex",
    "DepartmentTree",
    "KeyStore",
    "Layout",
    "Principal",
    "RoundIndexer",
    "Scope",
    "build_api",
    "mask_contact",
    "mount_api",
    "run_api",
]
