"""Mutated SRC traffic: the parsers fail only with their own errors, and what parses can be answered."""

from __future__ import annotations

import random

import pytest

from siprec_server.siprec import (
    MetadataError,
    SiprecError,
    assign_channels,
    build_answer,
    parse_metadata,
    parse_offer,
)

from .traffic import INVITES, fixture, load_invite

ROUNDS = 300


def mutate(data: bytes, rng: random.Random) -> bytes:
    buffer = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        if not buffer:
            break
        position = rng.randrange(len(buffer))
        action = rng.randrange(5)
        if action == 0:
            buffer[position] = rng.randrange(256)
        elif action == 1:
            del buffer[position : position + rng.randint(1, 40)]
        elif action == 2:
            buffer[position:position] = rng.choice([b"\r\n", b"\n", b"--", b"<", b"=", b";", b"\x00", b" "])
        elif action == 3:
            chunk = buffer[position : position + rng.randint(1, 60)]
            buffer[rng.randrange(len(buffer)) : rng.randrange(len(buffer))] = chunk
        else:
            del buffer[position:]
    return bytes(buffer)


@pytest.mark.parametrize("name", INVITES)
def test_mutated_offers(name: str) -> None:
    invite = load_invite(name)
    content_type = invite.header("content-type")
    rng = random.Random(name)
    outcomes = {"parsed": 0, "refused": 0}
    for _ in range(ROUNDS):
        body = mutate(invite.body, rng)
        try:
            offer = parse_offer(content_type, body)
        except SiprecError as error:
            assert error.status_code in (400, 488)  # type: ignore[attr-defined]
            outcomes["refused"] += 1
            continue
        outcomes["parsed"] += 1
        ports = [30000 + 2 * index for index in range(len(offer.sdp.media))]
        build_answer(offer.sdp, address="192.0.2.200", ports=ports, session_id=1, session_version=1)
        layout = assign_channels(offer.metadata, offer.labels)
        assert len(layout.stream_channels) == len(offer.sdp.media)
        assert all(0 <= channel < layout.channels for channel in layout.stream_channels)
    assert outcomes["parsed"] > 0 and outcomes["refused"] > 0


@pytest.mark.parametrize("name", ["rfc7865_appendix_a.xml", "cisco_cube_misassociated.xml"])
def test_mutated_metadata(name: str) -> None:
    rng = random.Random(name)
    source = fixture(name)
    for _ in range(ROUNDS):
        try:
            metadata = parse_metadata(mutate(source, rng))
        except MetadataError:
            continue
        assert metadata.datamode in ("complete", "partial")
