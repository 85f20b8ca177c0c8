"""Remote file names from a template: whatever the metadata said a party's number was, no name escapes the
target's directory, hides itself or loses the reference that makes it unique."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from siprec_server.delivery.names import MAX_NAME, render_name, safe_part
from siprec_server.delivery.transport import NameFields

FIELDS = NameFields(
    date="2026-11-28",
    time="140307",
    reference="HT-7K3M-Q9RX",
    caller="+3612345678",
    callee="+36301234567",
    direction="inbound",
)


def test_a_template_names_the_call() -> None:
    assert render_name("{date}_{time}_{reference}", FIELDS) == "2026-11-28_140307_HT-7K3M-Q9RX"
    assert (
        render_name("{direction}-{caller}-{callee}-{reference}", FIELDS)
        == "inbound-+3612345678-+36301234567-HT-7K3M-Q9RX"
    )


@pytest.mark.parametrize(
    ("caller", "expected"),
    [
        ("sip:alice@example.com;user=phone", "sip_alice_example.com_user_phone"),
        ("../../etc/passwd", "_._etc_passwd"),
        (".hidden", "hidden"),
        ("Kovács Éva", "Kov_cs__va"),
        ("", "_"),
        ("anonymous\x00\n", "anonymous__"),
    ],
)
def test_what_a_pbx_sends_cannot_escape_or_hide(caller: str, expected: str) -> None:
    assert safe_part(caller) == expected
    name = render_name("{caller}_{reference}", NameFields(**{**FIELDS.as_dict(), "caller": caller}))
    assert name == f"{expected}_HT-7K3M-Q9RX"


@given(st.text(max_size=400), st.text(max_size=400))
def test_any_value_gives_a_safe_name_that_keeps_the_reference(caller: str, callee: str) -> None:
    fields = NameFields(**{**FIELDS.as_dict(), "caller": caller, "callee": callee})
    name = render_name("{caller}_{callee}_{reference}", fields)
    assert "/" not in name and ".." not in name and not name.startswith(".")
    assert all(c.isascii() and (c.isalnum() or c in "+._-") for c in name)
    assert len(name) <= MAX_NAME and name.endswith("HT-7K3M-Q9RX")
