"""Mutated real traffic: the parser only ever raises SipParseError and the endpoint never raises at all."""

import collections
import random

from siprec_server.sip import Address, SipEndpoint, SipParseError, parse_message

from .traffic import RFC4475_WSINV, oracle_siprec_invite

SEEDS = [oracle_siprec_invite(), RFC4475_WSINV]
ALPHABET = b' \t\r\n:;,<>"\\/=@[]0123456789zZ\x00\xff'
SOURCE = Address(transport="udp", host="10.20.30.10", port=5060)


def _mutate(rng: random.Random, data: bytes) -> bytes:
    out = bytearray(data)
    for _ in range(rng.randint(1, 8)):
        position = rng.randrange(len(out))
        choice = rng.random()
        if choice < 0.4:
            out[position] = rng.choice(ALPHABET)
        elif choice < 0.7:
            del out[position : position + rng.randint(1, 40)]
        elif choice < 0.9:
            out[position:position] = bytes(rng.choice(ALPHABET) for _ in range(rng.randint(1, 6)))
        else:
            del out[position:]
        if not out:
            break
    return bytes(out)


def test_mutated_messages_never_escape_as_other_errors() -> None:
    rng = random.Random(20240514)
    endpoint = SipEndpoint(host="10.20.30.40", port=5060)
    outcomes: collections.Counter[str] = collections.Counter()
    for round_ in range(3000):
        data = _mutate(rng, SEEDS[round_ % len(SEEDS)])
        try:
            parse_message(data)
            outcomes["parsed"] += 1
        except SipParseError as error:
            assert error.reason and 400 <= error.status < 600
            outcomes["refused"] += 1
        endpoint.receive(data, SOURCE, now=round_ * 0.01)
        endpoint.handle_timer(round_ * 0.01)
        endpoint.transmit()
        while endpoint.next_event() is not None:
            pass
    assert outcomes["parsed"] > 300 and outcomes["refused"] > 300  # both paths were exercised
    assert sum(endpoint.counters.values()) > 3000
