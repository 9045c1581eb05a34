"""Who may see which customer, and what of it: the API's access policy, pure.

A caller is a :class:`Principal` (from its API key). Its scope depends on its role:

- ``admin`` sees every customer;
- ``manager`` sees customers with a department in its department's subtree (the department
  and every one under it in the :class:`DepartmentTree` from config);
- ``agent`` sees customers it owns and customers shared with it;
- ``privacy`` (a data-protection officer) sees every customer and may erase them.

A customer outside the scope is answered exactly like one that does not exist (404), so a
caller cannot learn that it exists. PII (contact name, e-mail, phone, address) is masked for a
principal without the ``pii`` permission.

Examples
--------
>>> tree = DepartmentTree.from_mapping({"sales": {"emea": {"uk": None}, "amer": None}})
>>> sorted(tree.subtree("sales/emea"))
['sales/emea', 'sales/emea/uk']
>>> manager = Principal("k1", "manager", department="sales/emea")
>>> Scope(manager, tree).allows(CustomerAccess(departments=frozenset({"sales/emea/uk"})))
True
>>> mask_email("jane.doe@example.com")
'j***@example.com'
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args

import yaml

from crm_core.errors import ConfigError

__all__ = [
    "PERMISSIONS",
    "ROLE_PERMISSIONS",
    "CustomerAccess",
    "DepartmentTree",
    "Principal",
    "Role",
    "Scope",
    "mask_contact",
    "mask_email",
    "mask_name",
    "mask_phone",
]

Role = Literal["admin", "manager", "agent", "privacy"]
#: What a key may do beyond reading its scope: ``pii`` (unmasked contact details), ``share``
#: (share a customer with an agent), ``erase`` (erase a customer: admins and ``privacy``).
PERMISSIONS: tuple[str, ...] = ("pii", "share", "erase")
#: Permissions every key of a role has; others are granted per key.
ROLE_PERMISSIONS: Mapping[str, frozenset[str]] = {
    "admin": frozenset({"pii", "share", "erase"}),
    "manager": frozenset(),
    "agent": frozenset(),
    "privacy": frozenset({"erase"}),
}


@dataclass(frozen=True, slots=True)
class Principal:
    """The caller behind an API key (never the key itself)."""

    key_id: str
    role: Role
    department: str | None = None
    identity: str | None = None
    granted: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        if self.role not in get_args(Role):
            raise ConfigError(f"unknown role {self.role!r}: use admin, manager, agent or privacy")
        if self.role == "manager" and not self.department:
            raise ConfigError("a manager key needs a department")
        if self.role == "agent" and not self.identity:
            raise ConfigError("an agent key needs an identity")
        unknown = self.granted - set(PERMISSIONS)
        if unknown:
            raise ConfigError(f"unknown permission(s) {sorted(unknown)}: use {PERMISSIONS}")

    @property
    def permissions(self) -> frozenset[str]:
        """The role's permissions plus those granted to this key."""
        return ROLE_PERMISSIONS[self.role] | self.granted

    def can(self, permission: str) -> bool:
        """Whether this principal has ``permission``."""
        return permission in self.permissions


@dataclass(frozen=True, slots=True)
class CustomerAccess:
    """What a scope decision needs to know about one customer."""

    departments: frozenset[str] = frozenset()
    owner: str | None = None
    shared_with: frozenset[str] = frozenset()


class DepartmentTree:
    """Departments as paths (``sales/emea/uk``) in a tree read from config.

    The YAML is a nested mapping of path segments; a leaf may be empty (``null``) or ``{}``.
    """

    def __init__(self, departments: frozenset[str]) -> None:
        self.departments = departments

    @classmethod
    def from_mapping(cls, tree: Mapping[str, Any] | None) -> DepartmentTree:
        """Build from a nested mapping of path segments."""

        def walk(node: Mapping[str, Any] | None, parent: str) -> Iterator[str]:
            for name, children in (node or {}).items():
                if not isinstance(name, str) or not name or "/" in name:
                    raise ConfigError(f"department segment {name!r} under {parent!r} is invalid")
                if children is not None and not isinstance(children, Mapping):
                    raise ConfigError(f"sub-departments of {name!r} must be a mapping")
                path = f"{parent}/{name}" if parent else name
                yield path
                yield from walk(children, path)

        return cls(frozenset(walk(tree, "")))

    @classmethod
    def load(cls, path: Path) -> DepartmentTree:
        """Read the tree from a YAML file (ConfigError if it is not one)."""
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError) as exc:
            raise ConfigError(f"cannot read the department tree {path}: {exc}") from exc
        if data is not None and not isinstance(data, Mapping):
            raise ConfigError(f"{path} must be a mapping of departments")
        return cls.from_mapping(data)

    def subtree(self, department: str) -> frozenset[str]:
        """``department`` and every department under it in the tree."""
        below = {d for d in self.departments if d.startswith(department + "/")}
        return frozenset({department, *below})


@dataclass(frozen=True, slots=True)
class Scope:
    """A principal's scope, with its department subtree resolved once."""

    principal: Principal
    tree: DepartmentTree
    departments: frozenset[str] = field(init=False)

    def __post_init__(self) -> None:
        department = self.principal.department
        subtree = self.tree.subtree(department) if department else frozenset()
        object.__setattr__(self, "departments", subtree)

    @property
    def everything(self) -> bool:
        """Whether the scope holds every customer (no filtering needed)."""
        return self.principal.role in ("admin", "privacy")

    def allows(self, customer: CustomerAccess) -> bool:
        """Whether the principal may see ``customer``."""
        role = self.principal.role
        if self.everything:
            return True
        if role == "manager":
            return not self.departments.isdisjoint(customer.departments)
        identity = self.principal.identity
        return identity is not None and (
            customer.owner == identity or identity in customer.shared_with
        )


def mask_email(email: str) -> str:
    """``jane.doe@example.com`` -> ``j***@example.com`` (the domain stays: it is not personal
    in most cases and helps support)."""
    local, at, domain = email.partition("@")
    if not at:
        return _stars(email)
    return f"{local[:1]}***@{domain}"


def mask_name(name: str) -> str:
    """``Jane Doe`` -> ``J*** D***``."""
    return " ".join(f"{word[:1]}***" for word in name.split())


def mask_phone(phone: str) -> str:
    """``+1-555-0123`` -> ``***23`` (the last two digits, for recognition)."""
    digits = [c for c in phone if c.isdigit()]
    return "***" + "".join(digits[-2:])


def _stars(_: str) -> str:
    return "***"


_MASKS = {"name": mask_name, "email": mask_email, "phone": mask_phone, "address": _stars}


def mask_contact(contact: Mapping[str, str | None], principal: Principal) -> dict[str, str | None]:
    """``contact`` as ``principal`` may see it: unchanged with ``pii``, else every field masked.

    >>> agent = Principal("k2", "agent", identity="agent-1")
    >>> mask_contact({"name": "Jane Doe", "phone": None, "address": "1 Main St"}, agent)
    {'name': 'J*** D***', 'phone': None, 'address': '***'}
    """
    if principal.can("pii"):
        return dict(contact)
    return {
        key: None if value is None else _MASKS.get(key, _stars)(value)
        for key, value in contact.items()
    }
