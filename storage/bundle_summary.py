"""The human-readable part of an access-request copy: the GDPR Art. 15(1) and (2) information in Hungarian
and English, as plain text (``summary.txt``) and HTML (``summary.html``). Pure: facts in, text out.

Items covered: the recordings found (Art. 15(3): the copy), purposes and legal basis (15(1)(a)), categories
of personal data (b), recipients (c), how long each recording is kept (d), the rights to rectification,
erasure, restriction and objection (e), the right to lodge a complaint with the NAIH (f), the source of the
data (g), automated decision-making (h), transfers to third countries (15(2)).
"""

from __future__ import annotations

import enum
import html
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID
from zoneinfo import ZoneInfo

__all__ = ["AudioState", "SummaryFacts", "SummaryRecording", "party_label", "summary_html", "summary_text"]

_LOCAL = ZoneInfo("Europe/Budapest")
_NAIH_HU = (
    "Nemzeti Adatvédelmi és Információszabadság Hatóság (NAIH), 1055 Budapest, Falk Miksa utca 9–11.; "
    "levélcím: 1363 Budapest, Pf. 9.; e-mail: ugyfelszolgalat@naih.hu; honlap: https://naih.hu"
)
_NAIH_EN = (
    "Hungarian National Authority for Data Protection and Freedom of Information (NAIH), "
    "1055 Budapest, Falk Miksa utca 9–11.; post: 1363 Budapest, Pf. 9.; e-mail: ugyfelszolgalat@naih.hu; "
    "web: https://naih.hu"
)


class AudioState(enum.StrEnum):
    INCLUDED = "included"
    NONE = "none"  # the call ended without audio (no media, failed)
    IN_PROGRESS = "in_progress"  # still being recorded when the bundle was made


@dataclass(frozen=True, slots=True, kw_only=True)
class SummaryRecording:
    reference: str
    started_at: datetime
    duration_seconds: float | None
    parties: tuple[str, ...]  # "Kovács Éva <sip:+3612345678@pbx.example.hu>"
    basis: str | None  # legal_obligation | consent | legitimate_interest
    statute: str | None
    purpose: str | None
    retention_days: int | None
    retention_statutory: bool
    retention_source: str | None
    expires_at: datetime | None
    folder: str  # where its files are in the bundle
    audio: AudioState


@dataclass(frozen=True, slots=True, kw_only=True)
class SummaryFacts:
    controller: str  # the tenant: who decided to record
    request_id: UUID
    received_at: datetime
    number: str | None
    reference: str | None
    since: datetime | None
    until: datetime | None
    generated_at: datetime
    recordings: tuple[SummaryRecording, ...]
    recipients: tuple[str, ...] = ()  # who received copies through the recording system
    consent_proofs: bool = False  # the bundle holds proofs of consent
    dtmf_digits: bool = False  # key presses are stored with their digits


@dataclass(frozen=True, slots=True)
class _Section:
    heading: str
    paragraphs: tuple[str, ...] = ()
    items: tuple[str, ...] = ()


def summary_text(facts: SummaryFacts) -> str:
    """Hungarian, then English, as plain UTF-8 text."""
    parts = []
    for title, header, sections in (_hungarian(facts), _english(facts)):
        lines = [title, "=" * len(title), "", *header, ""]
        for section in sections:
            lines += [section.heading, "-" * len(section.heading)]
            lines += [*section.paragraphs]
            lines += [f"  - {item}" for item in section.items]
            lines.append("")
        parts.append("\n".join(lines))
    return "\n\n".join(parts).rstrip() + "\n"


def summary_html(facts: SummaryFacts) -> str:
    """The same text as one self-contained HTML page (no scripts, no external resources)."""
    body = []
    for lang, (title, header, sections) in (("hu", _hungarian(facts)), ("en", _english(facts))):
        body.append(f'<section lang="{lang}">')
        body.append(f"<h1>{html.escape(title)}</h1>")
        body.append("<p>" + "<br>\n".join(html.escape(line) for line in header) + "</p>")
        for section in sections:
            body.append(f"<h2>{html.escape(section.heading)}</h2>")
            body += [f"<p>{html.escape(paragraph)}</p>" for paragraph in section.paragraphs]
            if section.items:
                body.append("<ul>")
                body += [f"<li>{html.escape(item)}</li>" for item in section.items]
                body.append("</ul>")
        body.append("</section>")
    return (
        '<!DOCTYPE html>\n<html lang="hu">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{html.escape(_hungarian(facts)[0])}</title>\n</head>\n<body>\n"
        + "\n".join(body)
        + "\n</body>\n</html>\n"
    )


def _local(moment: datetime) -> str:
    return moment.astimezone(_LOCAL).strftime("%Y-%m-%d %H:%M")


def _duration(seconds: float | None, minute: str, second: str) -> str:
    if seconds is None:
        return "?"
    whole = round(seconds)
    return f"{whole // 60} {minute} {whole % 60} {second}" if whole >= 60 else f"{whole} {second}"


_BASIS_HU = {
    "legal_obligation": "jogi kötelezettség teljesítése (GDPR 6. cikk (1) bekezdés c) pont)",
    "consent": "az Ön hozzájárulása (GDPR 6. cikk (1) bekezdés a) pont)",
    "legitimate_interest": "az adatkezelő jogos érdeke (GDPR 6. cikk (1) bekezdés f) pont)",
}
_BASIS_EN = {
    "legal_obligation": "compliance with a legal obligation (GDPR Art. 6(1)(c))",
    "consent": "your consent (GDPR Art. 6(1)(a))",
    "legitimate_interest": "the controller's legitimate interests (GDPR Art. 6(1)(f))",
}


def _basis(recording: SummaryRecording, names: dict[str, str], missing: str) -> str:
    text = names.get(recording.basis or "", missing)
    return f"{text}; {recording.statute}" if recording.statute else text


def _purposes(facts: SummaryFacts, names: dict[str, str], missing: str, unnamed: str) -> tuple[str, ...]:
    seen: dict[str, None] = {}
    for recording in facts.recordings:
        seen[f"{recording.purpose or unnamed}: {_basis(recording, names, missing)}"] = None
    return tuple(seen)


def _hungarian(facts: SummaryFacts) -> tuple[str, list[str], list[_Section]]:
    title = "Tájékoztatás hozzáférési kérelemre (GDPR 15. cikk)"
    header = [
        f"Adatkezelő: {facts.controller}",
        f"A kérelem azonosítója: {facts.request_id}",
        f"A kérelem beérkezett: {_local(facts.received_at)} (budapesti idő)",
        f"Keresés: {_criteria(facts, 'telefonszám', 'hivatkozási kód', 'időszak', 'kezdettől', 'máig')}",
        f"Összeállítva: {_local(facts.generated_at)} (budapesti idő)",
    ]
    found = [
        f"{r.reference}: {_local(r.started_at)}, {_duration(r.duration_seconds, 'perc', 'mp')}; "
        f"résztvevők: {', '.join(r.parties) or 'ismeretlen'}; "
        + {
            AudioState.INCLUDED: f"mappa: {r.folder}",
            AudioState.NONE: f"hang nem készült; adatai: {r.folder}",
            AudioState.IN_PROGRESS: f"az összeállításkor még tartott a felvétel; adatai: {r.folder}",
        }[r.audio]
        for r in facts.recordings
    ]
    categories = [
        "a beszélgetés hangfelvétele, mindkét fél hangjával",
        "a résztvevők telefonszáma és SIP-címe, a telefonrendszer által megjelenített nevük",
        "a hívás kezdete, vége, időtartama és iránya",
        "a hívás technikai adatai (hangkodek, csomagvesztés, késleltetés-ingadozás)",
        "a billentyűnyomások időpontja" + (" és számjegye" if facts.dtmf_digits else ""),
    ]
    if facts.consent_proofs:
        categories.append("a hozzájárulás igazolása: a kérdés változata, a megnyomott gomb és az időpont")
    retention = [_retention_hu(r) for r in facts.recordings]
    sections = [
        _Section(
            "1. A megtalált hangfelvételek",
            (
                f"A kérelem alapján {len(facts.recordings)} hangfelvételt találtunk. A felvételek teljes "
                "másolatát (mindkét fél hangjával) és adataikat ez a csomag tartalmazza (GDPR 15. cikk (3) bekezdés)."
                if facts.recordings
                else "A megadott adatok alapján nem találtunk Önről hangfelvételt.",
            ),
            tuple(found),
        ),
        _Section(
            "2. Az adatkezelés célja és jogalapja",
            items=_purposes(facts, _BASIS_HU, "a jogalap nincs rögzítve", "cél nincs megadva"),
        ),
        _Section("3. A kezelt személyes adatok köre", items=tuple(categories)),
        _Section(
            "4. Címzettek",
            (
                ("A rögzítőrendszer a felvételeket az alábbi címzetteknek továbbította:",)
                if facts.recipients
                else ("A rögzítőrendszer a felvételeket nem továbbította más címzettnek.",)
            ),
            facts.recipients,
        ),
        _Section(
            "5. Meddig őrizzük meg a felvételeket",
            ("A megőrzési idő lejártakor a felvételt és adatait a rendszer automatikusan törli.",),
            tuple(retention),
        ),
        _Section(
            "6. Az Ön jogai",
            (
                "Kérheti a pontatlan adatok helyesbítését (GDPR 16. cikk) és a felvételek törlését (17. cikk). "
                "Ha a felvételt jogszabály írja elő, a megőrzési idő lejárta előtt nem törölhetjük "
                "(17. cikk (3) bekezdés b) pont); ilyenkor megírjuk, melyik jogszabály miatt.",
                "Kérheti az adatkezelés korlátozását (18. cikk): ekkor a felvételt nem töröljük, és a "
                "tároláson kívül másra nem használjuk, amíg a korlátozás fennáll.",
                "Tiltakozhat a jogos érdeken alapuló adatkezelés ellen (21. cikk).",
                "Ha a felvétel az Ön hozzájárulásával készült, hozzájárulását bármikor visszavonhatja "
                "(7. cikk (3) bekezdés); ekkor ezeket a felvételeit töröljük. A visszavonás nem érinti a "
                "korábbi adatkezelés jogszerűségét.",
                f"Kérelmét az adatkezelőnél ({facts.controller}) nyújthatja be; hivatkozzon a kérelem "
                "azonosítójára vagy a felvétel hivatkozási kódjára.",
            ),
        ),
        _Section(
            "7. Panasztétel",
            (
                "Ha úgy véli, hogy személyes adatainak kezelése sérti a jogszabályokat, panaszt tehet a "
                f"felügyeleti hatóságnál: {_NAIH_HU}. Bírósághoz is fordulhat (GDPR 77. és 79. cikk).",
            ),
        ),
        _Section(
            "8. Az adatok forrása",
            (
                "A felvétel és adatai magából a telefonhívásból származnak: az adatkezelő telefonrendszere a "
                "hívás hangját és adatait (telefonszámok, nevek, időpontok) a hívás közben, a SIPREC szabvány "
                "szerint adta át a rögzítőrendszernek.",
            ),
        ),
        _Section(
            "9. Automatizált döntéshozatal",
            (
                "Az adatok alapján nem hozunk automatizált döntést, és profilalkotás sem történik "
                "(GDPR 22. cikk).",
            ),
        ),
        _Section(
            "10. Továbbítás harmadik országba",
            (
                "A rögzítőrendszer a felvételeket nem továbbítja harmadik országba vagy nemzetközi szervezethez "
                "(GDPR 15. cikk (2) bekezdés).",
            ),
        ),
        _Section(
            "11. A csomag tartalma",
            items=(
                "summary.txt, summary.html: ez a tájékoztatás",
                "manifest.json: a csomag minden fájljának mérete és SHA-256 ellenőrzőösszege",
                "recordings/<mappa>/: a felvétel hangfájlja, ahogy tároljuk, és adatai (metadata.json)",
            ),
        ),
    ]
    return title, header, sections


def _english(facts: SummaryFacts) -> tuple[str, list[str], list[_Section]]:
    title = "Information in reply to your access request (GDPR Art. 15)"
    header = [
        f"Controller: {facts.controller}",
        f"Request id: {facts.request_id}",
        f"Request received: {_local(facts.received_at)} (Budapest time)",
        f"Searched for: {_criteria(facts, 'phone number', 'reference', 'period', 'the start', 'now')}",
        f"Compiled: {_local(facts.generated_at)} (Budapest time)",
    ]
    found = [
        f"{r.reference}: {_local(r.started_at)}, {_duration(r.duration_seconds, 'min', 's')}; "
        f"parties: {', '.join(r.parties) or 'unknown'}; "
        + {
            AudioState.INCLUDED: f"folder: {r.folder}",
            AudioState.NONE: f"no audio was recorded; its data: {r.folder}",
            AudioState.IN_PROGRESS: f"still being recorded when this bundle was compiled; its data: {r.folder}",
        }[r.audio]
        for r in facts.recordings
    ]
    categories = [
        "the recording of the conversation, with the voices of both parties",
        "the parties' phone numbers and SIP addresses, and the names the phone system showed for them",
        "when the call started and ended, its length and direction",
        "technical data of the call (codec, packet loss, jitter)",
        "when keys were pressed" + (", and which" if facts.dtmf_digits else ""),
    ]
    if facts.consent_proofs:
        categories.append("proof of consent: the version of the question, the key pressed and when")
    retention = [_retention_en(r) for r in facts.recordings]
    sections = [
        _Section(
            "1. The recordings found",
            (
                f"We found {len(facts.recordings)} recording(s). This bundle holds a full copy of each (the "
                "voices of both parties) and its data (GDPR Art. 15(3))."
                if facts.recordings
                else "We found no recording of you for the details given.",
            ),
            tuple(found),
        ),
        _Section(
            "2. Purposes and legal basis",
            items=_purposes(facts, _BASIS_EN, "legal basis not recorded", "purpose not stated"),
        ),
        _Section("3. Categories of personal data", items=tuple(categories)),
        _Section(
            "4. Recipients",
            (
                ("The recording system passed the recordings to these recipients:",)
                if facts.recipients
                else ("The recording system has not passed the recordings to any recipient.",)
            ),
            facts.recipients,
        ),
        _Section(
            "5. How long the recordings are kept",
            ("When the period ends, the system deletes the recording and its data automatically.",),
            tuple(retention),
        ),
        _Section(
            "6. Your rights",
            (
                "You may ask for inaccurate data to be rectified (GDPR Art. 16) and for recordings to be erased "
                "(Art. 17). Where a law requires the recording, we cannot erase it before the period the law "
                "sets (Art. 17(3)(b)); we will then tell you which law.",
                "You may ask for processing to be restricted (Art. 18): the recording is then not deleted and "
                "not used for anything but storage while the restriction lasts.",
                "You may object to processing based on legitimate interests (Art. 21).",
                "Where a recording was made with your consent, you may withdraw it at any time (Art. 7(3)); "
                "those recordings are then erased. Withdrawal does not affect the lawfulness of processing "
                "before it.",
                f"Address requests to the controller ({facts.controller}), quoting the request id or a "
                "recording's reference.",
            ),
        ),
        _Section(
            "7. Complaints",
            (
                "If you consider that the processing of your personal data infringes the law, you may lodge a "
                f"complaint with the supervisory authority: {_NAIH_EN}. You may also go to court "
                "(GDPR Art. 77 and 79).",
            ),
        ),
        _Section(
            "8. Source of the data",
            (
                "The recording and its data come from the phone call itself: the controller's phone system "
                "passed the call's audio and details (numbers, names, times) to the recording system during "
                "the call, by the SIPREC standard.",
            ),
        ),
        _Section(
            "9. Automated decision-making",
            ("No automated decisions are made from this data, and no profiling takes place (GDPR Art. 22).",),
        ),
        _Section(
            "10. Transfers to third countries",
            (
                "The recording system does not transfer the recordings to a third country or an international "
                "organisation (GDPR Art. 15(2)).",
            ),
        ),
        _Section(
            "11. What is in this bundle",
            items=(
                "summary.txt, summary.html: this information",
                "manifest.json: the size and SHA-256 checksum of every file in the bundle",
                "recordings/<folder>/: the recording's audio file as stored, and its data (metadata.json)",
            ),
        ),
    ]
    return title, header, sections


def _criteria(facts: SummaryFacts, number: str, reference: str, period: str, start: str, end: str) -> str:
    parts = []
    if facts.number:
        parts.append(f"{number} {facts.number}")
    if facts.reference:
        parts.append(f"{reference} {facts.reference}")
    if facts.since or facts.until:
        since = _local(facts.since) if facts.since else start
        until = _local(facts.until) if facts.until else end
        parts.append(f"{period} {since} – {until}")
    return "; ".join(parts)


def _retention_hu(r: SummaryRecording) -> str:
    if r.retention_days is None:
        period = "megőrzési idő nincs rögzítve"
    elif r.retention_days == 0:
        period = "nem őrizzük meg: a hívás végén törlődik"
    else:
        period = f"{r.retention_days} napig"
    if r.retention_statutory and r.retention_source:
        period += f", jogszabály írja elő ({r.retention_source})"
    if r.basis == "consent":
        period += ", vagy amíg hozzájárulását vissza nem vonja"
    if r.expires_at is not None:
        period += f"; törlés: {_local(r.expires_at)}"
    return f"{r.reference}: {period}"


def _retention_en(r: SummaryRecording) -> str:
    if r.retention_days is None:
        period = "retention period not recorded"
    elif r.retention_days == 0:
        period = "not kept: deleted when the call ends"
    else:
        period = f"{r.retention_days} days"
    if r.retention_statutory and r.retention_source:
        period += f", required by law ({r.retention_source})"
    if r.basis == "consent":
        period += ", or until you withdraw your consent"
    if r.expires_at is not None:
        period += f"; deleted on {_local(r.expires_at)}"
    return f"{r.reference}: {period}"


def party_label(name: str | None, aor: str | None) -> str:
    """How a participant is named in the summary."""
    if name and aor:
        return f"{name} <{aor}>"
    return name or aor or "?"
