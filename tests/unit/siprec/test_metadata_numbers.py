"""Telephone numbers in every written form SRCs use, normalised to E.164 under the Hungarian plan."""

from __future__ import annotations

import pytest

from siprec_server.siprec.numbers import HUNGARY, NumberingPlan, NumberKind, normalise_number


@pytest.mark.parametrize(
    ("raw", "e164"),
    [
        ("+36301234567", "+36301234567"),  # mobile, 9-digit NSN
        ("0036301234567", "+36301234567"),
        ("06301234567", "+36301234567"),
        ("36301234567", "+36301234567"),
        ("+36 30 123-4567", "+36301234567"),
        ("06 (30) 123 4567", "+36301234567"),
        ("06/30/123-4567", "+36301234567"),
        ("+3612345678", "+3612345678"),  # Budapest, 1 + 7 digits
        ("0612345678", "+3612345678"),
        ("3612345678", "+3612345678"),
        ("+36-1-555-0100", "+3615550100"),  # tel: URI with visual separators (RFC 3966)
        ("0696555123", "+3696555123"),  # Győr, 2-digit area code + 6 digits
        ("06211234567", "+36211234567"),  # 21: corporate range, 9 digits
        ("0680123456", "+3680123456"),  # toll-free, 8 digits
        ("+442077705371", "+442077705371"),  # any other country written internationally
        ("0049301234567", "+49301234567"),
        ("+12404987661", "+12404987661"),
    ],
)
def test_written_forms_normalise_to_e164(raw: str, e164: str) -> None:
    number = normalise_number(raw)
    assert number is not None
    assert (number.kind, number.e164, number.value, number.raw) == (NumberKind.E164, e164, e164, raw)


@pytest.mark.parametrize(
    ("raw", "kind", "value"),
    [
        ("2001", NumberKind.EXTENSION, "2001"),
        ("3612", NumberKind.EXTENSION, "3612"),  # starts like the country code: still an extension
        ("0612", NumberKind.EXTENSION, "0612"),  # starts like the trunk prefix: still an extension
        ("101", NumberKind.EXTENSION, "101"),
        ("14448500", NumberKind.UNKNOWN, "14448500"),  # national without trunk prefix: not guessed
        ("063012345678", NumberKind.UNKNOWN, "063012345678"),  # one digit too many for a mobile
        ("0630123456", NumberKind.UNKNOWN, "0630123456"),  # one digit too few
        ("0601234567", NumberKind.UNKNOWN, "0601234567"),  # an NSN cannot start with 0
        ("0621234567", NumberKind.UNKNOWN, "0621234567"),  # the 21 range has 9 digits
        ("0771121212", NumberKind.UNKNOWN, "0771121212"),  # another country's national form
        ("2249888500", NumberKind.UNKNOWN, "2249888500"),
        ("+3612", NumberKind.UNKNOWN, "+3612"),  # too short to be international
        ("+0036301234567", NumberKind.UNKNOWN, "+0036301234567"),
        ("+1234567890123456", NumberKind.UNKNOWN, "+1234567890123456"),  # longer than E.164 allows
    ],
)
def test_extensions_and_unplaceable_numbers_stay_as_written(raw: str, kind: NumberKind, value: str) -> None:
    number = normalise_number(raw)
    assert number is not None
    assert (number.kind, number.e164, number.value) == (kind, None, value)


@pytest.mark.parametrize(
    "raw",
    ["", "   ", "alice", "Extension-016190619", "sub_00403715", "anonymous", "*67", "12#", "36+30", "++36"],
)
def test_text_that_is_no_number(raw: str) -> None:
    assert normalise_number(raw) is None


def test_every_written_form_finds_the_same_number() -> None:
    forms = {"+36301234567", "0036301234567", "06301234567", "36301234567"}
    for form in forms:
        number = normalise_number(form)
        assert number is not None and number.written_forms() == forms


def test_written_forms_of_foreign_numbers_and_extensions() -> None:
    foreign = normalise_number("+442077705371")
    extension = normalise_number("2105")
    assert foreign is not None and foreign.written_forms() == {
        "+442077705371",
        "442077705371",
        "00442077705371",
    }
    assert extension is not None and extension.written_forms() == {"2105"}


def test_another_numbering_plan() -> None:
    germany = NumberingPlan(
        country_code="49",
        international_prefix="00",
        trunk_prefix="0",
        nsn_digits=10,
        nine_digit_ranges=frozenset(),
    )
    number = normalise_number("030 1234 5678", germany)
    assert number is not None and number.e164 == "+493012345678"
    assert number.written_forms() == {"+493012345678", "493012345678", "00493012345678", "03012345678"}
    hungarian = normalise_number("030 1234 5678", HUNGARY)
    assert hungarian is not None and hungarian.e164 is None
