"""Mutated metadata of every dialect: the reader fails only with `MetadataError`, and what it reads holds up."""

from __future__ import annotations

import json
import random

import pytest

from siprec_server.siprec import MetadataError, find_metadata, split_body
from siprec_server.siprec.metadata import merge_metadata, parse_metadata

from .test_fuzz import mutate
from .traffic import FIXTURES, load_invite

ROUNDS = 200
MESSAGES = sorted(path.name for path in FIXTURES.glob("*.sip"))


@pytest.mark.parametrize("name", MESSAGES)
def test_mutated_dialects(name: str) -> None:
    message = load_invite(name)
    part = find_metadata(split_body(message.header("content-type"), message.body))
    assert part is not None
    original = parse_metadata(part.body)
    rng = random.Random(f"metadata:{name}")
    outcomes = {"read": 0, "refused": 0}
    for _ in range(ROUNDS):
        try:
            metadata = parse_metadata(mutate(part.body, rng))
        except MetadataError:
            outcomes["refused"] += 1
            continue
        outcomes["read"] += 1
        assert metadata.datamode in ("complete", "partial")
        json.dumps(metadata.call_facts_json())  # always storable in the catalogue
        assert all(str(warning) == warning.message for warning in metadata.warnings)
        ids = [participant.id for participant in metadata.participants]
        assert len(ids) == len(set(ids))
        merged = merge_metadata(original, metadata)
        assert {participant.id for participant in merged.participants} >= set(ids)
    assert outcomes["read"] > 0 and outcomes["refused"] > 0
