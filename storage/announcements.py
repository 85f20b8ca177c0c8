"""What the PBX may tell the caller at call start, in Hungarian and English (GDPR Art. 13; Fgytv. 17/B §).

From a recording `Decision` and the recording's reference: who records (the tenant), the purpose, the legal
basis in plain words (with the statute for a legal obligation), how long the recording is kept, the
reference spelled for reading out (``HT-7K3M-Q9RX`` → ``H T, 7 K 3 M, Q 9 R X``, so the caller can quote it
in an access request), and for consent the question with its keys. The reference itself goes to the PBX in
the ``X-Recording-Ref`` header of the 200 OK.

Purposes are stored as the operator wrote them; the common ones are translated (``quality assurance`` ↔
``minőségbiztosítás``), others are read as written in both languages.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

from .consent_terms import ConsentTerms
from .decision import Decision
from .reference import normalize_reference
from .retention_class import Basis, RetentionClass

__all__ = [
    "RECORDING_REF_HEADER",
    "Announcement",
    "Language",
    "announcement",
    "announcements",
    "recording_ref_header",
    "spell_reference",
]

RECORDING_REF_HEADER = "X-Recording-Ref"

# English purpose → Hungarian, for the common purposes (lower case keys; looked up in both directions).
_PURPOSES = {
    "quality assurance": "minőségbiztosítás",
    "training": "munkatársaink képzése",
    "quality assurance and training": "minőségbiztosítás és munkatársaink képzése",
    "contract evidence": "a szerződéskötés bizonyítása",
    "evidence of the contract": "a szerződéskötés bizonyítása",
    "complaint handling": "panaszkezelés",
    "customer service": "ügyfélszolgálat",
    "fault reports": "hibabejelentések kezelése",
    "fault report handling": "hibabejelentések kezelése",
    "order recording": "megbízások rögzítése",
    "investment services": "befektetési szolgáltatások nyújtása",
}
_PURPOSES_EN = {hu: en for en, hu in _PURPOSES.items()}
# The suffix of a digit's adjective form: 1-es (egyes), 3-as (hármas), 5-ös (ötös), 6-os (hatos), 0-s (nullás).
_HU_SUFFIX = {
    "0": "s",
    "1": "es",
    "2": "es",
    "3": "as",
    "4": "es",
    "5": "ös",
    "6": "os",
    "7": "es",
    "8": "as",
    "9": "es",
}
_HU_VOWELS = "aáeéiíoóöőuúüű"
_HU_LETTER_NAMES_WITH_VOWEL = "FLMNRSX"  # ef, el, em, en, er, es, iksz: "az RTL", "az MKB"
_EN_KEYS = {"*": "star", "#": "hash"}


class Language(StrEnum):
    HU = "hu"
    EN = "en"


@dataclass(frozen=True, slots=True, kw_only=True)
class Announcement:
    language: Language
    reference: str
    reference_spoken: str
    sentences: tuple[str, ...]  # who, purpose, basis, retention, reference, then the consent question

    @property
    def text(self) -> str:
        return " ".join(self.sentences)


def spell_reference(reference: str) -> str:
    """``HT-7K3M-Q9RX`` → ``H T, 7 K 3 M, Q 9 R X``: symbol by symbol, a pause at each hyphen."""
    canonical = normalize_reference(reference)
    if canonical is None:
        raise ValueError(f"{reference!r} is not a recording reference")
    return ", ".join(" ".join(group) for group in canonical.split("-"))


def recording_ref_header(reference: str) -> str:
    """The ``X-Recording-Ref`` header value: the canonical reference."""
    canonical = normalize_reference(reference)
    if canonical is None:
        raise ValueError(f"{reference!r} is not a recording reference")
    return canonical


def announcements(
    decision: Decision, reference: str, *, controller: str | None = None
) -> Mapping[Language, Announcement]:
    """Both languages; empty when the call is not recorded (there is nothing to announce)."""
    found = {
        language: announcement(decision, reference, language, controller=controller) for language in Language
    }
    return {language: text for language, text in found.items() if text is not None}


def announcement(
    decision: Decision, reference: str, language: Language, *, controller: str | None = None
) -> Announcement | None:
    """The announcement of a recorded call; None when it is not recorded. ``controller`` names who records
    when no tenant claimed the call (else the tenant's name is used)."""
    if not decision.record or decision.basis is None or decision.retention is None:
        return None
    who = decision.tenant_name or controller
    canonical = recording_ref_header(reference)
    spoken = spell_reference(canonical)
    purpose = decision.purpose or ""
    if language is Language.HU:
        sentences = _hungarian(who, purpose, decision.basis, decision.statute, decision.retention, spoken)
        if decision.consent is not None:
            sentences += _hungarian_consent(decision.consent)
    else:
        sentences = _english(who, purpose, decision.basis, decision.statute, decision.retention, spoken)
        if decision.consent is not None:
            sentences += _english_consent(decision.consent)
    return Announcement(language=language, reference=canonical, reference_spoken=spoken, sentences=sentences)


# -- Hungarian ------------------------------------------------------------------------------------------------
def _hungarian(
    who: str | None, purpose: str, basis: Basis, statute: str | None, retention: RetentionClass, spoken: str
) -> tuple[str, ...]:
    purpose_hu = _PURPOSES.get(purpose.strip().lower(), purpose.strip())
    if who:
        intro = f"{_hu_article(who).capitalize()} {who} tájékoztatja Önt, hogy a beszélgetést rögzítjük"
        interest = f"A rögzítés jogalapja {_hu_article(who)} {who} jogos érdeke"
    else:
        intro = "Tájékoztatjuk, hogy a beszélgetést rögzítjük"
        interest = "A rögzítés jogalapja jogos érdekünk"
    if basis is Basis.LEGAL_OBLIGATION:
        legal = f"A rögzítést jogszabály írja elő ({statute})"
    elif basis is Basis.CONSENT:
        legal = "A beszélgetést csak az Ön hozzájárulásával rögzítjük"
    else:
        legal = interest
    return tuple(
        _sentence(text)
        for text in (
            intro,
            f"A rögzítés célja: {purpose_hu}",
            legal,
            _hungarian_retention(retention, basis),
            f"A felvétel azonosítója: {spoken}",
        )
    )


def _hungarian_retention(retention: RetentionClass, basis: Basis) -> str:
    if retention.days == 0:
        return "A felvételt a hívás végén töröljük"
    period = _hu_period(retention.days)
    if retention.max_days is not None and retention.max_days > retention.days:
        period += f", a felügyeleti hatóság kérésére {_hu_period(retention.max_days)}"
    if basis is Basis.CONSENT:
        return f"A felvételt {period} őrizzük meg, vagy amíg hozzájárulását vissza nem vonja"
    return f"A felvételt {period} őrizzük meg"


def _hungarian_consent(terms: ConsentTerms) -> tuple[str, ...]:
    return (
        f"Ha hozzájárul a beszélgetés rögzítéséhez, nyomja meg {_hu_key(terms.yes_digit)} gombot; "
        f"ha nem járul hozzá, {_hu_key(terms.no_digit)} gombot.",
        f"Ha {str(terms.window_seconds).replace('.', ',')} másodpercen belül nem választ, "
        "a beszélgetést nem rögzítjük.",
        f"Hozzájárulását a hívás közben bármikor visszavonhatja {_hu_key(terms.stop_digit)} gomb megnyomásával.",
    )


def _hu_period(days: int) -> str:
    years = _years(days)
    return f"{years} évig" if years is not None else f"{days} napig"


def _hu_key(digit: str) -> str:
    """The key with its article, as in "nyomja meg az 1-es gombot"."""
    if digit == "*":
        return "a csillag"
    if digit == "#":
        return "a kettőskereszt"
    if digit.isdigit():
        return f"{'az' if digit in '15' else 'a'} {digit}-{_HU_SUFFIX[digit]}"
    return f"{'az' if digit == 'A' else 'a'} {digit}"


def _hu_article(name: str) -> str:
    """ "a" or "az" before a name, by its first sound: "az Acme Kft.", "a Példa Zrt.", "az MKB Bank"."""
    first = name.strip().split(" ", 1)[0]
    if not first:
        return "a"
    head = first[0]
    if head.lower() in _HU_VOWELS or head in "15":
        return "az"
    letters = [c for c in first if c.isalpha()]
    is_acronym = len(letters) >= 2 and all(c.isupper() for c in letters)
    if (
        is_acronym
        and not any(c.lower() in _HU_VOWELS for c in letters)
        and head in _HU_LETTER_NAMES_WITH_VOWEL
    ):
        return "az"
    return "a"


# -- English --------------------------------------------------------------------------------------------------
def _english(
    who: str | None, purpose: str, basis: Basis, statute: str | None, retention: RetentionClass, spoken: str
) -> tuple[str, ...]:
    purpose_en = _PURPOSES_EN.get(purpose.strip().lower(), purpose.strip())
    intro = f"This call is recorded by {who}" if who else "This call is recorded"
    if basis is Basis.LEGAL_OBLIGATION:
        legal = f"The recording is required by law ({statute})"
    elif basis is Basis.CONSENT:
        legal = "We record this call only with your consent"
    else:
        legal = (
            f"The legal basis is the legitimate interest of {who}"
            if who
            else "The legal basis is our legitimate interest"
        )
    return tuple(
        _sentence(text)
        for text in (
            intro,
            f"The purpose of the recording is {purpose_en}",
            legal,
            _english_retention(retention, basis),
            f"The reference of this recording is {spoken}",
        )
    )


def _english_retention(retention: RetentionClass, basis: Basis) -> str:
    if retention.days == 0:
        return "The recording is deleted when the call ends"
    period = _en_period(retention.days)
    if retention.max_days is not None and retention.max_days > retention.days:
        period += f", or {_en_period(retention.max_days)} if the supervisory authority requests it"
    if basis is Basis.CONSENT:
        return f"The recording is kept for {period}, or until you withdraw your consent"
    return f"The recording is kept for {period}"


def _english_consent(terms: ConsentTerms) -> tuple[str, ...]:
    return (
        f"To agree to this call being recorded, press {_en_key(terms.yes_digit)}; "
        f"to refuse, press {_en_key(terms.no_digit)}.",
        f"If you do not answer within {terms.window_seconds} seconds, the call is not recorded.",
        f"You can withdraw your consent at any time during the call by pressing {_en_key(terms.stop_digit)}.",
    )


def _en_period(days: int) -> str:
    years = _years(days)
    if years is not None:
        return f"{years} year" + ("s" if years != 1 else "")
    return f"{days} day" + ("s" if days != 1 else "")


def _en_key(digit: str) -> str:
    return _EN_KEYS.get(digit, digit)


# -- shared ---------------------------------------------------------------------------------------------------
def _years(days: int) -> int | None:
    """Whole years when ``days`` is one (365, 730, 1826 with a leap day, 2557), else None."""
    years = round(days / 365.25)
    return years if years >= 1 and abs(days - years * 365.25) <= 1.5 else None


def _sentence(text: str) -> str:
    text = text.rstrip()
    return text if text.endswith((".", "!", "?")) else f"{text}."
