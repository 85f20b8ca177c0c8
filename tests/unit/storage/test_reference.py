from __future__ import annotations

import random
import re

import pytest

from storage import new_reference, normalize_reference
from storage.reference import ALPHABET

CANONICAL = re.compile(r"^HT-[0-9A-HJKMNP-TV-Z]{4}-[0-9A-HJKMNP-TV-Z]{4}$")


def test_alphabet_is_crockford_without_ambiguous_letters() -> None:
    assert len(ALPHABET) == 32
    assert len(set(ALPHABET)) == 32
    assert not set("ILOU") & set(ALPHABET)


def test_new_references_are_canonical_and_random() -> None:
    references = {new_reference() for _ in range(2000)}
    assert all(CANONICAL.match(reference) for reference in references)
    assert len(references) == 2000  # 40 random bits: a repeat here would mean a broken generator


def test_seeded_choice_makes_a_reproducible_reference() -> None:
    assert new_reference(random.Random(7).choice) == new_reference(random.Random(7).choice)


def test_every_generated_reference_normalizes_to_itself() -> None:
    for _ in range(500):
        reference = new_reference()
        assert normalize_reference(reference) == reference


@pytest.mark.parametrize(
    ("typed", "expected"),
    [
        ("HT-7K3M-Q9RX", "HT-7K3M-Q9RX"),
        ("ht-7k3m-q9rx", "HT-7K3M-Q9RX"),
        ("  HT 7K3M Q9RX\n", "HT-7K3M-Q9RX"),
        ("7K3M-Q9RX", "HT-7K3M-Q9RX"),  # read out without the prefix
        ("7k3mq9rx", "HT-7K3M-Q9RX"),
        ("HT-OK3M-Q9RX", "HT-0K3M-Q9RX"),  # letter O typed for zero
        ("HT-7K3M-Q9RL", "HT-7K3M-Q9R1"),  # l and I typed for one
        ("ht-7k3m-q9ri", "HT-7K3M-Q9R1"),
        ("HTHT-7K3M-Q9", "HT-HT7K-3MQ9"),  # ten symbols starting HT: the prefix, not data
        ("HT7K3MQ9", "HT-HT7K-3MQ9"),  # eight symbols: all data, even if they start with HT
    ],
)
def test_normalizes_what_people_type(typed: str, expected: str) -> None:
    assert normalize_reference(typed) == expected


@pytest.mark.parametrize(
    "typed",
    [
        "",
        "HT-",
        "HT-7K3M-Q9R",  # one symbol short
        "HT-7K3M-Q9RXX",  # one too many
        "HT-7K3M-Q9RU",  # U is not in the alphabet
        "XX-7K3M-Q9RX",  # wrong prefix
        "HT-7K3M-Q9R*",
        "HT-7K3M-Q9RŐ",
        "'; DROP TABLE recordings; --",
        "3f1c2b9e-7d4a-4c55-9a55-0c2a6f0d8e11",  # a uuid is not a reference
    ],
)
def test_rejects_what_cannot_be_a_reference(typed: str) -> None:
    assert normalize_reference(typed) is None
