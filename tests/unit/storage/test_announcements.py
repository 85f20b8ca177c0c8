"""Announcement texts in Hungarian and English, generated from the decision, and the spoken reference."""

from __future__ import annotations

from dataclasses import replace

import pytest

from storage.announcements import (
    RECORDING_REF_HEADER,
    Language,
    announcement,
    announcements,
    recording_ref_header,
    spell_reference,
)
from storage.attribution import CallContext
from storage.consent_terms import ConsentTerms
from storage.decision import Decision, decide
from storage.policy_rules import PolicyDirection
from storage.retention_class import Basis

from .policy_samples import World

REFERENCE = "HT-7K3M-Q9RX"


def _decision(
    *,
    name: str = "Acme Kft.",
    retention: str = "quality_60d",
    purpose: str = "quality assurance",
    **policy: object,
) -> Decision:
    w = World(system_policy=False)
    tenant = w.tenant("acme", name, hints=["SP-HU-0042/Budapest Iroda"])
    w.policy(tenant, retention=retention, purpose=purpose, **policy)  # type: ignore[arg-type]
    return decide(w.snapshot(), CallContext(calling="+36301234567", tenant_hint="SP-HU-0042/Budapest Iroda"))


def test_the_reference_is_spelled_for_reading_out() -> None:
    assert spell_reference("HT-7K3M-Q9RX") == "H T, 7 K 3 M, Q 9 R X"
    assert spell_reference("ht 7k3m q9rx") == "H T, 7 K 3 M, Q 9 R X"  # as a caller might type it back
    assert recording_ref_header("ht-7k3m-q9rx") == "HT-7K3M-Q9RX"
    assert RECORDING_REF_HEADER == "X-Recording-Ref"
    for bad in ("HT-7K3M", "HT-7K3M-Q9RU", "", "sip:+3612345678@pbx"):
        with pytest.raises(ValueError, match="not a recording reference"):
            spell_reference(bad)


def test_legitimate_interest_in_both_languages() -> None:
    decision = _decision()
    texts = announcements(decision, REFERENCE)
    assert texts[Language.HU].text == (
        "Az Acme Kft. tájékoztatja Önt, hogy a beszélgetést rögzítjük. "
        "A rögzítés célja: minőségbiztosítás. "
        "A rögzítés jogalapja az Acme Kft. jogos érdeke. "
        "A felvételt 60 napig őrizzük meg. "
        "A felvétel azonosítója: H T, 7 K 3 M, Q 9 R X."
    )
    assert texts[Language.EN].text == (
        "This call is recorded by Acme Kft. "
        "The purpose of the recording is quality assurance. "
        "The legal basis is the legitimate interest of Acme Kft. "
        "The recording is kept for 60 days. "
        "The reference of this recording is H T, 7 K 3 M, Q 9 R X."
    )
    assert texts[Language.HU].reference == REFERENCE


def test_a_legal_obligation_names_its_statute_and_years() -> None:
    decision = _decision(
        name="Példa Víziközmű Zrt.", retention="utility_customer_service", purpose="ügyfélszolgálat"
    )
    hu = announcement(decision, REFERENCE, Language.HU)
    en = announcement(decision, REFERENCE, Language.EN)
    assert hu is not None and en is not None
    assert hu.sentences[:4] == (
        "A Példa Víziközmű Zrt. tájékoztatja Önt, hogy a beszélgetést rögzítjük.",
        "A rögzítés célja: ügyfélszolgálat.",
        "A rögzítést jogszabály írja elő (Fgytv. 17/B §).",
        "A felvételt 5 évig őrizzük meg.",
    )
    assert en.sentences[1:4] == (
        "The purpose of the recording is customer service.",  # the common purposes are translated
        "The recording is required by law (Fgytv. 17/B §).",
        "The recording is kept for 5 years.",
    )


def test_a_period_the_supervisor_may_extend() -> None:
    decision = _decision(
        name="MKB Befektetési Zrt.", retention="investment_services", purpose="order recording"
    )
    hu = announcement(decision, REFERENCE, Language.HU)
    en = announcement(decision, REFERENCE, Language.EN)
    assert hu is not None and en is not None
    assert hu.sentences[0] == "Az MKB Befektetési Zrt. tájékoztatja Önt, hogy a beszélgetést rögzítjük."
    assert hu.sentences[3] == "A felvételt 5 évig, a felügyeleti hatóság kérésére 7 évig őrizzük meg."
    assert (
        en.sentences[3]
        == "The recording is kept for 5 years, or 7 years if the supervisory authority requests it."
    )


def test_consent_asks_the_question_with_its_keys() -> None:
    decision = _decision(retention="consent", purpose="training", basis=Basis.CONSENT)
    hu = announcement(decision, REFERENCE, Language.HU)
    en = announcement(decision, REFERENCE, Language.EN)
    assert hu is not None and en is not None
    assert hu.sentences[2:] == (
        "A beszélgetést csak az Ön hozzájárulásával rögzítjük.",
        "A felvételt 1 évig őrizzük meg, vagy amíg hozzájárulását vissza nem vonja.",
        "A felvétel azonosítója: H T, 7 K 3 M, Q 9 R X.",
        "Ha hozzájárul a beszélgetés rögzítéséhez, nyomja meg az 1-es gombot; ha nem járul hozzá, a 2-es gombot.",
        "Ha 10 másodpercen belül nem választ, a beszélgetést nem rögzítjük.",
        "Hozzájárulását a hívás közben bármikor visszavonhatja a 9-es gomb megnyomásával.",
    )
    assert en.sentences[-3:] == (
        "To agree to this call being recorded, press 1; to refuse, press 2.",
        "If you do not answer within 10 seconds, the call is not recorded.",
        "You can withdraw your consent at any time during the call by pressing 9.",
    )


@pytest.mark.parametrize(
    ("terms", "hu", "en"),
    [
        (ConsentTerms(yes_digit="5", no_digit="3", stop_digit="#"), ("az 5-ös", "a 3-as", "a kettőskereszt"),
         ("press 5", "press 3", "pressing hash")),
        (ConsentTerms(yes_digit="6", no_digit="0", stop_digit="*", window_seconds=8), ("a 6-os", "a 0-s", "a csillag"),
         ("press 6", "press 0", "pressing star")),
        (ConsentTerms(yes_digit="A", no_digit="8", stop_digit="4"), ("az A", "a 8-as", "a 4-es"),
         ("press A", "press 8", "pressing 4")),
    ],
)  # fmt: skip
def test_keys_are_named_with_the_right_hungarian_article_and_suffix(
    terms: ConsentTerms, hu: tuple[str, str, str], en: tuple[str, str, str]
) -> None:
    w = World(system_policy=False)
    tenant = w.tenant("acme", "Acme Kft.", hints=["acme"])
    w.policy(tenant, retention="consent", basis=Basis.CONSENT)
    w.policies[-1] = replace(w.policies[-1], consent=terms)
    decision = decide(w.snapshot(), CallContext(tenant_hint="acme"))
    text_hu = announcement(decision, REFERENCE, Language.HU)
    text_en = announcement(decision, REFERENCE, Language.EN)
    assert text_hu is not None and text_en is not None
    assert f"nyomja meg {hu[0]} gombot; ha nem járul hozzá, {hu[1]} gombot." in text_hu.text
    assert f"visszavonhatja {hu[2]} gomb megnyomásával." in text_hu.text
    assert f"{en[0]}; to refuse, {en[1]}." in text_en.text
    assert text_en.text.endswith(f"{en[2]}.")
    assert f"{terms.window_seconds} másodpercen belül" in text_hu.text


def test_a_fractional_window_is_read_with_the_decimal_mark_of_each_language() -> None:
    w = World(system_policy=False)
    tenant = w.tenant("acme", "Acme Kft.", hints=["acme"])
    w.policy(tenant, retention="consent", basis=Basis.CONSENT)
    w.policies[-1] = replace(w.policies[-1], consent=ConsentTerms(window_seconds=7.5))
    decision = decide(w.snapshot(), CallContext(tenant_hint="acme"))
    text_hu = announcement(decision, REFERENCE, Language.HU)
    text_en = announcement(decision, REFERENCE, Language.EN)
    assert text_hu is not None and text_en is not None
    assert "Ha 7,5 másodpercen belül nem választ" in text_hu.text
    assert "If you do not answer within 7.5 seconds" in text_en.text


@pytest.mark.parametrize(
    ("name", "hu_start"),
    [
        ("Acme Kft.", "az Acme Kft."),
        ("Élelmiszer Bt.", "az Élelmiszer Bt."),
        ("Őrség Kft.", "az Őrség Kft."),
        ("Győri Fuvar Kft.", "a Győri Fuvar Kft."),
        ("RTL Magyarország", "az RTL Magyarország"),
        ("MÁV Zrt.", "a MÁV Zrt."),
        ("5 Csillag Kft.", "az 5 Csillag Kft."),
        ("2Tel Kft.", "a 2Tel Kft."),
    ],
)
def test_the_hungarian_article_follows_the_names_first_sound(name: str, hu_start: str) -> None:
    text = announcement(_decision(name=name), REFERENCE, Language.HU)
    assert text is not None
    article, rest = hu_start.split(" ", 1)
    assert (
        text.sentences[0] == f"{article.capitalize()} {rest} tájékoztatja Önt, hogy a beszélgetést rögzítjük."
    )
    assert text.sentences[2] == f"A rögzítés jogalapja {hu_start} jogos érdeke."


def test_not_kept_calls_and_unattributed_calls() -> None:
    none = announcement(_decision(retention="none"), REFERENCE, Language.HU)
    assert none is not None and "A felvételt a hívás végén töröljük." in none.sentences
    w = World()  # the install's system policy; no tenant
    decision = decide(w.snapshot(), CallContext(calling="+36301234567", called="+3612345678"))
    hu = announcement(decision, REFERENCE, Language.HU)
    en = announcement(decision, REFERENCE, Language.EN, controller="Hangtár Szolgáltató Kft.")
    assert hu is not None and en is not None
    assert hu.sentences[0] == "Tájékoztatjuk, hogy a beszélgetést rögzítjük."
    assert hu.sentences[2] == "A rögzítés jogalapja jogos érdekünk."
    assert en.sentences[0] == "This call is recorded by Hangtár Szolgáltató Kft."


def test_nothing_is_announced_for_a_call_that_is_not_recorded() -> None:
    decision = _decision(record=False, direction=PolicyDirection.BOTH)
    assert not decision.record
    assert announcement(decision, REFERENCE, Language.HU) is None
    assert announcements(decision, REFERENCE) == {}
