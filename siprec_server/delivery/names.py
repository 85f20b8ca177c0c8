"""Remote file names from a target's template: safe on any server, whatever a caller's number looks like.

Values come from the catalogue, and through it from the SIPREC metadata a PBX sent: a "number" may be
``sip:alice@example.com;user=phone``, ``anonymous`` or worse. Each value keeps only ``A-Z a-z 0-9 + . _ -``
(anything else becomes ``_``), runs of dots shrink to one and a value never starts with one, so no name holds
``/``, ``..``, a control character or starts hidden. The template itself was checked when the target was saved
(:func:`storage.delivery_settings.check_settings`: known fields, ``{reference}`` in it, no ``/``).
"""

from __future__ import annotations

import posixpath
import re

from .transport import NameFields, Notice, TransportError

__all__ = ["MAX_NAME", "notice_path", "render_name", "safe_part"]

MAX_NAME = 180  # leaves room for ".flac.part", ".erased.json" within the 255 octets most file systems allow
_UNSAFE = re.compile(r"[^A-Za-z0-9+._-]")
_DOTS = re.compile(r"\.{2,}")


def safe_part(value: str) -> str:
    """``value`` with only ``A-Z a-z 0-9 + . _ -``; never empty, never starting with a dot."""
    cleaned = _DOTS.sub(".", _UNSAFE.sub("_", value)).lstrip(".")
    return cleaned or "_"


def render_name(template: str, fields: NameFields) -> str:
    """The base name (no extension) the template gives for these values."""
    values = {name: safe_part(value) for name, value in fields.as_dict().items()}
    name = safe_part(template.format_map(values))
    if len(name) > MAX_NAME:  # the reference is what makes a name unique: keep it whole at the end
        reference = values["reference"]
        name = name[: MAX_NAME - len(reference) - 1].rstrip("._-") + "_" + reference
    return name


def notice_path(notice: Notice, directory: str, name_template: str) -> tuple[str, str | None]:
    """Where a file server gets the notice about a delivered copy: ``<copy's stem>.<event>.json`` beside the
    copy (its remote path as delivered), else in ``directory`` under the name the template gives the recording;
    and the copy's file name, if known. ``TransportError`` when the notice names no copy at all."""
    if notice.copy_path:
        directory, copy = posixpath.split(notice.copy_path)
        stem = copy.rsplit(".", 1)[0] if "." in copy else copy
    elif notice.names is not None:
        stem, copy = render_name(name_template, notice.names), None
    else:
        raise TransportError(f"the notice about {notice.reference} names no copy", retryable=False)
    return posixpath.join(directory, f"{stem}.{notice.kind.value}.json"), copy
