"""Every written form of a number finds the same E.164 key; extensions and junk stay apart."""

from __future__ import annotations

import pytest

from storage.phone import number_key, to_e164


@pytest.mark.parametrize(
    "written",
    [
        "+36 1 234 5678",
        "06-1-234-5678",
        "3612345678",
        "0036 1 234 5678",
        "(06 1) 234-5678",
        "sip:+3612345678@pbx.example.hu",
        "tel:+36-1-234-5678",
        "+3612345678",
    ],
)
def test_budapest_number_in_any_form(written: str) -> None:
    assert to_e164(written) == "+3612345678"
    assert number_key(written) == "+3612345678"


def test_mobile_and_foreign_numbers() -> None:
    assert to_e164("06 30 123 4567") == "+36301234567"
    assert to_e164("+44 20 7946 0958") == "+442079460958"
    assert to_e164("020 7946 0958", region="GB") == "+442079460958"


@pytest.mark.parametrize(
    ("written", "key"), [("201", "201"), ("3612", "3612"), ("*21#", "*21#"), ("sip:201@pbx", "201")]
)
def test_extensions_stay_as_dialled(written: str, key: str) -> None:
    assert to_e164(written) is None
    assert number_key(written) == key


@pytest.mark.parametrize("junk", ["", "   ", "sip:alice@example.com", "anonymous", "+36 1 234 567a", "--"])
def test_no_number(junk: str) -> None:
    assert to_e164(junk) is None
    assert number_key(junk) is None
