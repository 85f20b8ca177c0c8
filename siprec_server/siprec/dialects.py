"""The metadata dialects SRCs send, and how a document is told apart (design guide §2.1).

Supported dialects (every one is read into the same model; none is refused for being odd). Namespaces:
`rec1` = `urn:ietf:params:xml:ns:recording:1` (RFC 7865), `rec` = `urn:ietf:params:xml:ns:recording`
(draft era), `siprec` = `urn:ietf:params:xml:ns:siprec`.

| SRC | namespace, root | ids | who sends which stream | party names |
|---|---|---|---|---|
| RFC 7865 App. A, RFC 8068 | `rec1`, `recording` | `participant_id`… | `<participantstreamassoc>` | `<nameID>` |
| OpenSIPS, FreeSWITCH mod_siprec | `rec1`, `recording` | `*_id` | assoc (or none) | `<nameID aor><name>` |
| Cisco CUBE | `rec1`, `recording` | `*_id` | assoc, or `<send>`/`<recv>` in participant | `<nameID aor>` |
| Oracle/Acme SBC | `rec`, `recording` | bare `id` | `<send>` in `<participant>` | `<nameID aor><name>` |
| Avaya SBCE | `rec1`, `recording` | `*_id` | assoc | `<nameID aor>` |
| AudioCodes (RFC 7865 / legacy) | `rec1` or `rec`, `recording` | `*_id` | assoc / in participant | `aor="user@host"` |
| Ribbon / Sonus SBC | `rec`, `recording` or `tns:recording` | `*_id` | assoc | `aor` without scheme |
| Cisco BroadWorks, Webex | `siprec`, `recording_metadata` | bare `id` | `<send><id>…</id></send>` | `<aor>` child |
| Metaswitch CFS (modelled) | `rec`, `recording` | bare `id` | `<send>` in participant | `<aor>`/`<name>` |
| NetSapiens SiPbx (modelled) | `rec1`, `recording` | `*_id` | assoc | `<nameID aor><name>` |

Vendor data kept (raw, per vendor) and lifted into `RecordingMetadata.call`:

| SRC | block | lifted |
|---|---|---|
| any (RFC 7865 `session`) | `<sipSessionID>` | `sip_session_id` |
| Oracle/Acme | `apkt:` elements | `ucid`; `callingParty` → calling/called; `header[Call-ID]` → `call_id` |
| Avaya SBCE | (none) | session id in UCID form → `ucid`; `ASBCE@…` stand-in, real party in an UPDATE |
| AudioCodes | `ac:GenesysUUID`, `ac:AvayaUCID` | `genesys_uuid`, `ucid` |
| Ribbon / Sonus | `callData` | `fromhdr`/`tohdr` → numbers, `callid` → `call_id`, `gcid` |
| BroadWorks, Webex | `broadWorksRecordingMetadata` | provider/group → tenant; orig/termCall → direction, numbers |
| Metaswitch (modelled) | `msw:` | `businessGroup` → tenant, `callDirection`, `subscriberDN`/`otherPartyDN` |
| NetSapiens (modelled) | `ns:` | `domain` → tenant, `orig_from_uri`/`term_to_uri`, `orig_`/`term_domain` |

Variants read in every dialect: `datamode`/`dataMode` (any case; absent = complete), `complete` and `partial`
(merged by `merge_metadata`), any element prefix, timestamps with or without zone and with fractions (1970
dates ignored), AORs with or without scheme, in angle brackets, with a display name, parameters or stray
spaces. "Modelled": no public sample was found; the shape follows the vendor's documented field names.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

__all__ = [
    "DRAFT_NAMESPACE",
    "RECORDING_NAMESPACES",
    "RFC7865_NAMESPACE",
    "SIPREC_NAMESPACE",
    "SIPREC_NAMESPACES",
    "DialectInfo",
    "NamespaceKind",
    "is_known_dialect",
]

RFC7865_NAMESPACE = "urn:ietf:params:xml:ns:recording:1"
DRAFT_NAMESPACE = "urn:ietf:params:xml:ns:recording"  # draft-ietf-siprec-metadata, before RFC 7865
SIPREC_NAMESPACE = "urn:ietf:params:xml:ns:siprec"  # BroadWorks, Webex: root <recording_metadata>
RECORDING_NAMESPACES = frozenset({RFC7865_NAMESPACE, DRAFT_NAMESPACE})
SIPREC_NAMESPACES = frozenset({*RECORDING_NAMESPACES, SIPREC_NAMESPACE})
_KNOWN_ROOTS = {
    RFC7865_NAMESPACE: "recording",
    DRAFT_NAMESPACE: "recording",
    SIPREC_NAMESPACE: "recording_metadata",
}


class NamespaceKind(StrEnum):
    """A bounded name for the root's namespace, fit for a metric label."""

    RFC7865 = "recording:1"
    DRAFT = "recording"
    SIPREC = "siprec"
    NONE = "none"
    OTHER = "other"


_KINDS = {RFC7865_NAMESPACE: NamespaceKind.RFC7865, DRAFT_NAMESPACE: NamespaceKind.DRAFT}
_KINDS[SIPREC_NAMESPACE] = NamespaceKind.SIPREC


@dataclass(frozen=True, slots=True, kw_only=True)
class DialectInfo:
    """How a document was written: root namespace and (lowercased) name, whether the root was prefixed, and
    the vendors whose extension blocks it carried (`vendor.Vendor` values, in order of first appearance)."""

    namespace: str = RFC7865_NAMESPACE
    root: str = "recording"
    vendors: list[str] = field(default_factory=list)

    @property
    def namespace_kind(self) -> NamespaceKind:
        if not self.namespace:
            return NamespaceKind.NONE
        return _KINDS.get(self.namespace, NamespaceKind.OTHER)

    @property
    def root_label(self) -> str:
        """`recording`, `recording_metadata` or `other`: the root name, bounded for a metric label."""
        return self.root if self.root in ("recording", "recording_metadata") else "other"

    def to_json(self) -> dict[str, Any]:
        return {"namespace": self.namespace, "root": self.root, "vendors": list(self.vendors)}


def is_known_dialect(namespace: str, root: str) -> bool:
    """Whether `root` (lowercased local name) in `namespace` is one of the dialects in the table above."""
    return _KNOWN_ROOTS.get(namespace) == root
