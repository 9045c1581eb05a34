"""ISO 4217 currency codes: which codes are real, and how many decimals their minor unit has.

The list is ISO 4217 List One (currencies and funds) as published by the maintenance agency on
2026-01-01: it has ``XCG`` and ``ZWG`` and no longer has ``ANG``, ``BGN``, ``HRK``, ``SLL`` or
``ZWL``. Update :data:`MINOR_UNITS` when a new List One withdraws or adds a code; the JSON Schema
of purchase events lists these codes, so run ``python -m schemas.export`` afterwards.

Amounts on the wire are integers in minor units, so converting between currencies needs the
exponent: 2599 in ``USD`` is 25.99 dollars, 2599 in ``JPY`` is 2599 yen.

Examples
--------
>>> is_currency_code("EUR"), is_currency_code("EUROS"), is_currency_code("usd")
(True, False, False)
>>> minor_unit_exponent("USD"), minor_unit_exponent("JPY"), minor_unit_exponent("KWD")
(2, 0, 3)
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

__all__ = ["ISO_4217_CODES", "MINOR_UNITS", "is_currency_code", "minor_unit_exponent"]

_ZERO = "BIF CLP DJF GNF ISK JPY KMF KRW PYG RWF UGX UYI VND VUV XAF XOF XPF"
_THREE = "BHD IQD JOD KWD LYD OMR TND"
_FOUR = "CLF UYW"
# Codes without a minor unit ("N.A." in List One): precious metals, bond-market and
# accounting units, the testing code and "no currency".
_NONE = "XAD XAG XAU XBA XBB XBC XBD XDR XPD XPT XSU XTS XUA XXX"
_TWO = (
    "AED AFN ALL AMD AOA ARS AUD AWG AZN BAM BBD BDT BMD BND BOB BOV BRL BSD BTN BWP BYN BZD "
    "CAD CDF CHE CHF CHW CNY COP COU CRC CUP CVE CZK DKK DOP DZD EGP ERN ETB EUR FJD FKP GBP "
    "GEL GHS GIP GMD GTQ GYD HKD HNL HTG HUF IDR ILS INR IRR JMD KES KGS KHR KPW KYD KZT LAK "
    "LBP LKR LRD LSL MAD MDL MGA MKD MMK MNT MOP MRU MUR MVR MWK MXN MXV MYR MZN NAD NGN NIO "
    "NOK NPR NZD PAB PEN PGK PHP PKR PLN QAR RON RSD RUB SAR SBD SCR SDG SEK SGD SHP SLE SOS "
    "SRD SSP STN SVC SYP SZL THB TJS TMT TOP TRY TTD TWD TZS UAH USD USN UYU UZS VED VES WST "
    "XCD XCG YER ZAR ZMW ZWG"
)

#: Every current ISO 4217 code mapped to its minor-unit exponent (``None`` when it has none).
MINOR_UNITS: Mapping[str, int | None] = MappingProxyType(
    {
        code: exponent
        for codes, exponent in ((_ZERO, 0), (_TWO, 2), (_THREE, 3), (_FOUR, 4), (_NONE, None))
        for code in codes.split()
    }
)

#: The current ISO 4217 codes (upper case, three letters).
ISO_4217_CODES: frozenset[str] = frozenset(MINOR_UNITS)


def is_currency_code(code: str) -> bool:
    """Whether ``code`` is a current ISO 4217 code, exactly as written (upper case)."""
    return code in ISO_4217_CODES


def minor_unit_exponent(code: str) -> int:
    """Decimals of ``code``'s minor unit (2 for ``USD``, 0 for ``JPY``).

    Raises ``ValueError`` for codes that are not current ISO 4217 codes or have no minor unit
    (such as ``XAU``), since an amount in minor units cannot be converted for those.
    """
    try:
        exponent = MINOR_UNITS[code]
    except KeyError:
        raise ValueError(f"{code!r} is not a current ISO 4217 currency code") from None
    if exponent is None:
        raise ValueError(f"{code!r} has no minor unit, so minor-unit amounts cannot be converted")
    return exponent
