"""Attributing a call to a tenant: hints, source networks, DIDs, ranges and extensions, in their order.

The data is shaped as a Hungarian hosted-PBX operator has it: BroadWorks enterprise/group hints, Budapest and
Győr DIDs written every way SRCs write them, overlapping DID blocks, dedicated SBC networks.
"""

from __future__ import annotations

import phonenumbers
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from storage.attribution import AttributedBy, CallContext, Party, attribute
from storage.number_keys import party_key
from storage.phone import number_key
from storage.tenant_models import NumberKind

from .policy_samples import INBOUND, OUTBOUND, World


@pytest.fixture
def world() -> World:
    """Two BroadWorks groups of one service provider and a Győr haulier on its own SBC."""
    w = World()
    acme = w.tenant("acme", "Acme Kft.", hints=["SP-HU-0042/Budapest Iroda"])
    gyor = w.tenant("gyor", "Győri Fuvar Kft.", hints=["SP-HU-0042/Gyor Telephely"])
    w.number(acme, "+3612345678")
    w.number(acme, "+36123", NumberKind.RANGE)  # +36 1 23x xxxx
    w.number(acme, "201", NumberKind.EXTENSION)
    w.number(gyor, "+3696555123")
    w.number(gyor, "+3612345", NumberKind.RANGE)  # +36 1 234 5xxx, inside acme's block
    w.number(gyor, "+3612399999")  # one DID inside acme's block
    w.number(gyor, "201", NumberKind.EXTENSION)
    w.source(gyor, "198.51.100.0/28")
    w.source(acme, "2001:db8:4::/48")
    return w


def _slug(world: World, context: CallContext) -> str | None:
    found = attribute(world.snapshot(), context)
    return None if found.tenant is None else found.tenant.slug


def test_a_broadworks_hint_names_the_tenant_whatever_the_numbers(world: World) -> None:
    context = CallContext(
        calling="sip:06209998877@198.51.100.7",
        called="sip:+3696555123@198.51.100.7",  # gyor's DID
        direction=INBOUND,
        tenant_hint="sp-hu-0042/BUDAPEST IRODA",
        source_ip="198.51.100.7",  # gyor's SBC
    )
    found = attribute(world.snapshot(), context)
    assert found.tenant is not None and found.tenant.slug == "acme"
    assert found.by is AttributedBy.HINT
    assert (found.party, found.number) == (None, None)  # neither number is acme's
    assert (found.calling_key, found.called_key) == ("+36209998877", "+3696555123")


def test_an_unknown_hint_falls_through_to_the_next_rules(world: World) -> None:
    context = CallContext(called="+3696555123", direction=INBOUND, tenant_hint="SP-HU-0042/Debrecen")
    found = attribute(world.snapshot(), context)
    assert (found.tenant and found.tenant.slug, found.by) == ("gyor", AttributedBy.NUMBER)


@pytest.mark.parametrize(
    ("source", "slug"),
    [
        ("198.51.100.7", "gyor"),
        ("198.51.100.15", "gyor"),
        ("198.51.100.16", None),
        ("::ffff:198.51.100.7", "gyor"),  # a dual-stack socket's view of an IPv4 peer
        ("2001:db8:4:1::5060", "acme"),
        ("[2001:db8:4::1]", "acme"),
        ("2001:db8:5::1", None),
        ("not-an-address", None),
    ],
)
def test_source_networks(world: World, source: str, slug: str | None) -> None:
    context = CallContext(calling="+36301234567", called="+36305550123", source_ip=source)
    assert _slug(world, context) == slug
    if slug is not None:
        assert attribute(world.snapshot(), context).by is AttributedBy.SOURCE


def test_the_most_specific_source_network_wins(world: World) -> None:
    acme = world.tenants[0]
    world.source(acme, "198.51.100.0/24")  # wider than gyor's /28
    assert _slug(world, CallContext(source_ip="198.51.100.9")) == "gyor"
    assert _slug(world, CallContext(source_ip="198.51.100.99")) == "acme"


@pytest.mark.parametrize(
    "called",
    ["+36 1 234 5678", "06-1-234-5678", "0036 1 234 5678", "3612345678", "sip:+3612345678@sbc.example.hu;user=phone",
     "tel:+36-1-234-5678"],
)  # fmt: skip
def test_inbound_calls_are_attributed_by_the_called_did_in_any_form(world: World, called: str) -> None:
    found = attribute(world.snapshot(), CallContext(calling="+3696555123", called=called, direction=INBOUND))
    assert found.tenant is not None and found.tenant.slug == "acme"  # not gyor, whose DID is calling
    assert (found.by, found.party, found.number and found.number.value) == (
        AttributedBy.NUMBER,
        Party.CALLED,
        "+3612345678",
    )
    assert (found.direction, found.direction_inferred) == (INBOUND, False)


def test_outbound_calls_are_attributed_by_the_calling_number(world: World) -> None:
    found = attribute(
        world.snapshot(), CallContext(calling="06 96 555 123", called="+3612345678", direction=OUTBOUND)
    )
    assert found.tenant is not None and found.tenant.slug == "gyor"
    assert (found.party, found.calling_key, found.called_key) == (Party.CALLING, "+3696555123", "+3612345678")


def test_unknown_direction_tries_the_called_number_first_and_infers_the_direction(world: World) -> None:
    both = attribute(world.snapshot(), CallContext(calling="+3696555123", called="+3612345678"))
    assert both.tenant is not None and both.tenant.slug == "acme"
    assert (both.party, both.direction, both.direction_inferred) == (Party.CALLED, INBOUND, True)
    calling_only = attribute(world.snapshot(), CallContext(calling="06 96 555 123", called="06 30 123 4567"))
    assert calling_only.tenant is not None and calling_only.tenant.slug == "gyor"
    assert (calling_only.party, calling_only.direction, calling_only.direction_inferred) == (
        Party.CALLING,
        OUTBOUND,
        True,
    )


def test_an_exact_did_beats_any_range(world: World) -> None:
    # +36 1 239 9999 is inside acme's +36123 block but is gyor's own DID.
    found = attribute(world.snapshot(), CallContext(called="06 1 239 9999", direction=INBOUND))
    assert (found.tenant and found.tenant.slug, found.by) == ("gyor", AttributedBy.NUMBER)


@pytest.mark.parametrize(
    ("called", "slug"),
    [
        ("+36 1 234 5001", "gyor"),  # +3612345 is longer than +36123
        ("+36 1 234 6001", "acme"),
        ("+36 1 230 0000", "acme"),
        ("+36 1 240 0000", None),
    ],
)
def test_the_longest_range_prefix_wins(world: World, called: str, slug: str | None) -> None:
    found = attribute(world.snapshot(), CallContext(calling="+36301234567", called=called, direction=INBOUND))
    assert (found.tenant and found.tenant.slug) == slug
    if slug is not None:
        assert (found.by, found.party, found.number and found.number.kind) == (
            AttributedBy.RANGE,
            Party.CALLED,
            NumberKind.RANGE,
        )


def test_extensions_never_attribute_on_their_own(world: World) -> None:
    # Both tenants have extension 201: without a hint or a source it names nobody.
    found = attribute(world.snapshot(), CallContext(calling="sip:201@pbx.example.hu", called="+36301234567"))
    assert (found.tenant, found.by) == (None, AttributedBy.NONE)
    assert (found.calling_key, found.called_key) == ("201", "+36301234567")


def test_once_the_tenant_is_known_its_extension_is_its_party(world: World) -> None:
    context = CallContext(
        calling="sip:201@pbx.example.hu", called="06 30 123 4567", tenant_hint="SP-HU-0042/Gyor Telephely"
    )
    found = attribute(world.snapshot(), context)
    assert found.tenant is not None and found.tenant.slug == "gyor"
    assert found.number is not None and (found.number.kind, found.number.value) == (
        NumberKind.EXTENSION,
        "201",
    )
    assert found.number.tenant_id == found.tenant.id  # gyor's 201, not acme's
    assert (found.party, found.direction, found.direction_inferred) == (Party.CALLING, OUTBOUND, True)


def test_a_given_direction_is_kept_even_when_the_other_party_is_the_tenants(world: World) -> None:
    # The metadata says inbound; the tenant (known by its hint) turns out to be the calling party.
    context = CallContext(
        calling="+36 1 234 5678",
        called="+36 30 123 4567",
        direction=INBOUND,
        tenant_hint="SP-HU-0042/Budapest Iroda",
    )
    found = attribute(world.snapshot(), context)
    assert (found.party, found.direction, found.direction_inferred) == (Party.CALLING, INBOUND, False)


def test_unattributable_calls_have_no_tenant(world: World) -> None:
    found = attribute(world.snapshot(), CallContext(calling="+44 20 7946 0958", called="06 30 123 4567"))
    assert (found.tenant, found.by, found.party, found.direction) == (None, AttributedBy.NONE, None, None)
    assert (found.calling_key, found.called_key) == ("+442079460958", "+36301234567")


def test_numbers_are_read_in_the_tenants_region() -> None:
    w = World()
    wien = w.tenant("wien", "Wiener Büro GmbH", region="AT", hints=["SP-AT-0007/Wien"])
    w.number(wien, "+43158800")
    found = attribute(
        w.snapshot(), CallContext(calling="01 58800", called="0664 1234567", tenant_hint="SP-AT-0007/Wien")
    )
    assert found.tenant == wien
    assert (found.calling_key, found.party) == ("+43158800", Party.CALLING)
    # Read in Hungary the same digits are no number at all: without the hint nothing matches.
    assert attribute(w.snapshot(), CallContext(calling="01 58800", called="0664 1234567")).tenant is None


def test_missing_or_empty_inputs() -> None:
    w = World()
    found = attribute(w.snapshot(), CallContext())
    assert (found.tenant, found.calling_key, found.called_key) == (None, None, None)
    assert attribute(w.snapshot(), CallContext(calling="", called="anonymous", tenant_hint="")).tenant is None


# -- number keys: the call-setup shortcut gives exactly storage.phone's answer ---------------------------------
@pytest.mark.parametrize(
    "written",
    [
        "+36 06 1 234 5678",  # a national prefix after the country code: libphonenumber drops it
        "+39 06 6982 0000",  # Rome: the leading zero is part of the number
        "+1 1 212 555 0123",
        "+44 0 20 7946 0958",
        "+7 8 495 123 4567",
        "+54 9 11 1234 5678",
        "+3612345678",
        "sip:+36-1-234-5678@sbc.example.hu;user=phone",
        "+0036 1 234 5678",
        "+999 123",
        "+3",
        "+",
        "+36 1 234 5678 #",
    ],
)
def test_party_keys_equal_number_keys_for_awkward_forms(written: str) -> None:
    for region in ("HU", "AT", "IT", "US"):
        assert party_key(written, region) == number_key(written, region)


def test_party_keys_equal_number_keys_for_every_regions_example_numbers() -> None:
    for region in sorted(phonenumbers.SUPPORTED_REGIONS):
        for kind in (phonenumbers.PhoneNumberType.FIXED_LINE, phonenumbers.PhoneNumberType.MOBILE):
            example = phonenumbers.example_number_for_type(region, kind)
            if example is None:
                continue
            for fmt in (phonenumbers.PhoneNumberFormat.E164, phonenumbers.PhoneNumberFormat.INTERNATIONAL):
                written = phonenumbers.format_number(example, fmt)
                assert party_key(written, "HU") == number_key(written, "HU"), written


@settings(max_examples=2000)
@given(
    st.sampled_from(["+", "00", "06", "36", "", "+36 06", "+39 0", "+1 1"]),
    st.text(alphabet="0123456789", min_size=1, max_size=16),
    st.sampled_from(["{}", "sip:{}@sbc.example.hu", "tel:{}", " {} "]),
    st.sampled_from(["HU", "DE", "GB", "US", "IT"]),
)
def test_party_keys_equal_number_keys(prefix: str, digits: str, shape: str, region: str) -> None:
    written = shape.format(prefix + digits)
    assert party_key(written, region) == number_key(written, region)
