"""A record of processing activities (GDPR Art. 30) as Markdown, for a DPO to file or print. Pure."""

from __future__ import annotations

from .models import format_timestamp
from .processing_records import ProcessingRecord

__all__ = ["to_markdown"]

_BASIS = {
    "legal_obligation": "legal obligation — Art. 6(1)(c)",
    "consent": "consent — Art. 6(1)(a)",
    "legitimate_interest": "legitimate interests — Art. 6(1)(f)",
}


def to_markdown(record: ProcessingRecord) -> str:
    controller = record.controller
    lines = [
        f"# Record of processing activities: call recording — {_text(controller.name)}",
        "",
        f"GDPR Art. 30. Generated {format_timestamp(record.generated_at)} from the recording system's current "
        "configuration; entries marked *to be completed* need the controller's input.",
        "",
        "## Controller and processor",
        "",
        f"- **Controller** (Art. 30(1)(a)): {_text(controller.name)} (`{controller.slug}`); contact details and "
        "data protection officer: *to be completed*",
        f"- **Processor** (Art. 28, 30(2)): {_text(record.processor)}",
        "- **Processing activity**: recording of telephone calls on the controller's numbers "
        "(SIPREC session recording)",
        "",
        "## Purposes and legal bases (Art. 30(1)(b))",
        "",
    ]
    if record.purposes:
        lines += ["| Purpose | Legal basis | Statute | Status |", "|---|---|---|---|"]
        for purpose in record.purposes:
            status = "recorded now" if purpose.current else "only earlier recordings kept"
            lines.append(
                f"| {_cell(purpose.purpose)} | {_BASIS.get(purpose.basis, purpose.basis)} | "
                f"{_cell(purpose.statute or '—')} | {status} |"
            )
    else:
        lines.append(
            "No call is recorded for this controller: no current policy records, and no recording is kept."
        )
    lines += ["", "### Recording policies in force", ""]
    if record.policies:
        lines += [
            "| Scope | Version | Direction | Recorded | Basis | Purpose | Retention class |",
            "|---|---|---|---|---|---|---|",
        ]
        for policy in record.policies:
            lines.append(
                f"| {_cell(policy.scope)} | {policy.version} | {policy.direction} | "
                f"{'yes' if policy.record else 'no'} | {_cell(policy.basis or '—')} | "
                f"{_cell(policy.purpose or '—')} | {_cell(policy.retention_class or '—')} |"
            )
    else:
        lines.append("None.")
    lines += [
        "",
        "## Categories of data subjects (Art. 30(1)(c))",
        "",
        *[f"- {item}" for item in record.data_subjects],
        "",
        "## Categories of personal data (Art. 30(1)(c))",
        "",
        *[f"- {item}" for item in record.data_categories],
        "",
        "## Recipients (Art. 30(1)(d))",
        "",
    ]
    if record.recipients:
        lines += [f"- {_text(recipient)}" for recipient in record.recipients]
    else:
        lines.append("None: the recording system delivers no copies to other recipients.")
    lines += [
        "",
        "## Transfers to third countries (Art. 30(1)(e))",
        "",
        record.transfers[0].upper() + record.transfers[1:] + ".",
        "",
        "## Time limits for erasure (Art. 30(1)(f))",
        "",
        "| Class | Name | Period | Statutory | Basis | Source | Tenant option |",
        "|---|---|---|---|---|---|---|",
    ]
    for line in record.retention:
        period = "not kept" if line.days == 0 else f"{line.days} days"
        if line.max_days:
            period += f" (up to {line.max_days} on request)"
        option = (
            "—"
            if line.option_position is None
            else ("default" if line.option_position == 0 else f"choice {line.option_position}")
        )
        lines.append(
            f"| `{line.code}` | {_cell(line.name)} | {period} | {'yes' if line.statutory else 'no'} | "
            f"{_BASIS.get(line.basis, line.basis)} | {_cell(line.source)} | {option} |"
        )
    lines += [
        "",
        *[f"- {item}" for item in record.erasure],
        "",
        "## Technical and organisational security measures (Art. 30(1)(g), Art. 32)",
        "",
        *[f"- {item}" for item in record.measures],
        "",
        "## Scale",
        "",
        f"- numbers: {', '.join(f'{count} {kind}' for kind, count in record.numbers.items()) or 'none'}",
        f"- recordings kept now: {record.recordings}",
        "",
    ]
    return "\n".join(lines)


def _text(value: str) -> str:
    return value.replace("\n", " ").strip()


def _cell(value: str) -> str:
    return _text(value).replace("|", "\\|")
