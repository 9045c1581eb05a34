"""Fictional contact details (names, example.* e-mail domains, 555-01xx phone numbers)."""

from __future__ import annotations

import numpy as np

__all__ = ["draw_contacts"]

_FIRST = (
    "Ada", "Ben", "Chloe", "Dev", "Elena", "Farid", "Grace", "Hiro", "Ines", "Jonas", "Kemi",
    "Liam", "Mei", "Noah", "Olga", "Priya", "Quinn", "Rosa", "Sami", "Tara", "Umar", "Vera",
    "Wei", "Xenia", "Yusuf", "Zoe",
)  # fmt: skip
_LAST = (
    "Smith", "Garcia", "Müller", "Okafor", "Tanaka", "Kowalski", "Dubois", "Rossi", "Nguyen",
    "Silva", "Khan", "Johansson", "O'Brien", "Patel", "Kim", "Novak", "Jensen", "Costa",
)  # fmt: skip
_STREETS = ("Elm Street", "Market Road", "Harbour Lane", "Station Way", "Mill Close", "Oak Avenue")
_CITIES: dict[str, tuple[str, ...]] = {
    "emea": ("Springfield, GB", "Neustadt, DE", "Lyon, FR", "Porto, PT"),
    "amer": ("Springfield, US", "Riverton, US", "Halifax, CA", "Monterrey, MX"),
    "apac": ("Sydney, AU", "Osaka, JP", "Auckland, NZ", "Pune, IN"),
}
_DOMAINS = ("example.com", "example.org", "example.net")


def _ascii(text: str) -> str:
    return text.lower().replace("ü", "ue").replace("'", "")


def draw_contacts(rng: np.random.Generator, regions: list[str]) -> list[dict[str, str]]:
    """One contact dict (name, email, optional phone, address) per customer region."""
    n = len(regions)
    first = rng.integers(len(_FIRST), size=n).tolist()
    last = rng.integers(len(_LAST), size=n).tolist()
    number = rng.integers(1, 200, size=n).tolist()
    domain = rng.integers(len(_DOMAINS), size=n).tolist()
    has_phone = (rng.random(n) < 0.7).tolist()
    phone = rng.integers(100, 200, size=n).tolist()
    street = rng.integers(len(_STREETS), size=n).tolist()
    city = rng.integers(4, size=n).tolist()
    contacts: list[dict[str, str]] = []
    for i in range(n):
        given, family = _FIRST[first[i]], _LAST[last[i]]
        contact = {
            "name": f"{given} {family}",
            "email": f"{_ascii(given)}.{_ascii(family)}{number[i]}@{_DOMAINS[domain[i]]}",
        }
        if has_phone[i]:
            contact["phone"] = f"+1-555-0{phone[i]}"
        contact["address"] = f"{number[i]} {_STREETS[street[i]]}, {_CITIES[regions[i]][city[i]]}"
        contacts.append(contact)
    return contacts
