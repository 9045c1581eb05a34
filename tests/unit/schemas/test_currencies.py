"""The shipped ISO 4217 list."""

from __future__ import annotations

import pytest

from schemas import ISO_4217_CODES, MINOR_UNITS, is_currency_code, minor_unit_exponent


def test_codes_are_three_upper_case_letters() -> None:
    assert all(len(code) == 3 and code.isalpha() and code.isupper() for code in ISO_4217_CODES)
    assert len(ISO_4217_CODES) == len(MINOR_UNITS) == 178


@pytest.mark.parametrize("code", ["USD", "EUR", "JPY", "GBP", "CHF", "XCG", "ZWG", "SLE", "VED"])
def test_current_codes_are_known(code: str) -> None:
    assert is_currency_code(code)


@pytest.mark.parametrize("code", ["HRK", "SLL", "ZWL", "DEM", "usd", "US", "USDT", "", "BTC"])
def test_withdrawn_and_made_up_codes_are_not(code: str) -> None:
    assert not is_currency_code(code)


@pytest.mark.parametrize(
    ("code", "exponent"), [("USD", 2), ("EUR", 2), ("JPY", 0), ("KRW", 0), ("KWD", 3), ("CLF", 4)]
)
def test_minor_unit_exponents(code: str, exponent: int) -> None:
    assert minor_unit_exponent(code) == exponent


@pytest.mark.parametrize(("code", "match"), [("XAU", "no minor unit"), ("ABC", "not a current")])
def test_minor_unit_exponent_of_unusable_codes_raises(code: str, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        minor_unit_exponent(code)
