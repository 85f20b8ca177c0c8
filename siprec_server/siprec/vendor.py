"""Vendor extension blocks in metadata: recognised by namespace, kept raw, and read for call facts.

RFC 7865 lets any element carry elements of other namespaces (`##other`, §6: "extension data"); SRCs put
their own call data there. Each block is kept as a `VendorExtension` (the vendor, where it was found, the
XML re-serialised with plain `xmlns` declarations, and its leaf values flattened by path) and `claims`
reads the useful fields of the known ones. Shapes, as published by the vendors or seen in captures:

- Oracle/Acme (`http://acmepacket.com/siprec/extensiondata`, also misspelt `http:/acmepacket.com/…`):
  `<extensiondata>` children in `<session>` (`apkt:ucid` "00FA08…;encoding=hex", `apkt:callerOrig`) and in
  `<participant>` (`apkt:callingParty` true/false, `apkt:request-uri`, `apkt:realm`,
  `apkt:header label="Call-ID"><value>`). `callerOrig` is kept raw only: its meaning is not documented.
- BroadWorks (`http://schema.broadsoft.com/broadworksCallRecording`, versions 1.0 to 3.0):
  `<broadWorksRecordingMetadata>` with `extTrackingID`, `serviceProviderID`, `groupID`, `userID`, `callID`,
  `callType/origCall` (the recorded user called out) or `callType/termCall` (was called), each with
  `callingPartyNumber` and `calledPartyNumber`.
- Ribbon/Sonus (`urn:ietf:params:xml:ns:callData` in `<group>`): `fromhdr`, `tohdr` (the From/To headers of
  the recorded leg), `callid`, `gcid`, plus any header mapped by a "SIP Rec Metadata Profile".
- AudioCodes: `ac:GenesysUUID` (from X-Genesys-CallUUID) and `ac:AvayaUCID` (from User-to-User), each
  declaring its own default namespace `urn:ietf:params:xml:ns:Genesys` / `…:Avaya`.
- Metaswitch (modelled; no public sample found): `msw:businessGroup`, `msw:subscriberDN`,
  `msw:otherPartyDN`, `msw:callDirection` (originating/terminating), after CFS's own terms.
- NetSapiens (modelled; no public sample found): `domain`, `orig_from_uri`, `orig_domain`, `term_to_uri`,
  `term_domain`, `orig_callid`, after the SiPbx CDR field names.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from xml.sax.saxutils import escape, quoteattr

from .xmltree import UNBOUND_NAMESPACE, Node

__all__ = ["Claim", "Vendor", "VendorExtension", "build_extensions", "claims", "is_placeholder", "vendor_of"]


class Vendor(StrEnum):
    ORACLE = "oracle"  # Oracle (Acme Packet) SBC
    BROADWORKS = "broadworks"  # Cisco BroadWorks, Webex Calling
    RIBBON = "ribbon"  # Ribbon (Sonus, GENBAND) SBC
    AUDIOCODES = "audiocodes"
    METASWITCH = "metaswitch"
    NETSAPIENS = "netsapiens"
    AVAYA = "avaya"  # Avaya SBCE: no block, recognised by its placeholder participant
    OTHER = "other"  # any other namespace (RFC 7865 Appendix A's `http://example.com/my`)


_BY_NAMESPACE = (
    ("acmepacket.com", Vendor.ORACLE),
    ("broadsoft.com", Vendor.BROADWORKS),
    ("broadworks", Vendor.BROADWORKS),
    ("urn:ietf:params:xml:ns:calldata", Vendor.RIBBON),
    ("sonus", Vendor.RIBBON),
    ("rbbn.com", Vendor.RIBBON),
    ("audiocodes", Vendor.AUDIOCODES),
    ("urn:ietf:params:xml:ns:genesys", Vendor.AUDIOCODES),
    ("urn:ietf:params:xml:ns:avaya", Vendor.AUDIOCODES),
    ("metaswitch", Vendor.METASWITCH),
    ("netsapiens", Vendor.NETSAPIENS),
)
_BY_UNBOUND_PREFIX = {"apkt": Vendor.ORACLE, "ac": Vendor.AUDIOCODES, "msw": Vendor.METASWITCH}
# Avaya SBCE opens with a stand-in party `sip:ASBCE@…` and names the real one in a later UPDATE.
_PLACEHOLDER_USERS = frozenset({"asbce"})


@dataclass(frozen=True, slots=True, kw_only=True)
class VendorExtension:
    """One vendor's elements under one parent element.

    `parent` is the lowercased name of the element they were found in (`session`, `participant`, `group`,
    `recording`…) and `parent_id` its id (for `<extensiondata parent="…">` the id it points to, and `parent`
    the kind of that element when known). `fields` maps element paths (`callType/origCall/callingPartyNumber`,
    `header[Call-ID]/value`; a repeat gets `#2`) to their text.
    """

    vendor: Vendor
    namespace: str
    parent: str
    parent_id: str | None
    xml: str
    fields: Mapping[str, str]


@dataclass(frozen=True, slots=True)
class Claim:
    """What a block says: `fact` is `calling`, `called` (an address or number), `calling_party`,
    `called_party` (a participant id), `direction` (`inbound`/`outbound`), `tenant` or `id:<kind>`."""

    fact: str
    value: str
    source: str
    raw: str | None = None


def vendor_of(namespace: str) -> Vendor:
    if namespace.startswith(UNBOUND_NAMESPACE):
        return _BY_UNBOUND_PREFIX.get(namespace[len(UNBOUND_NAMESPACE) :].lower(), Vendor.OTHER)
    lowered = namespace.lower()
    return next((vendor for marker, vendor in _BY_NAMESPACE if marker in lowered), Vendor.OTHER)


def is_placeholder(uri: str | None) -> bool:
    """Whether a participant's (cleaned) URI is a vendor's stand-in rather than a party of the call."""
    user = uri.split(":", 1)[-1].split("@", 1)[0] if uri else ""
    return user.lower() in _PLACEHOLDER_USERS


def build_extensions(parent: str, parent_id: str | None, nodes: Sequence[Node]) -> list[VendorExtension]:
    """The foreign `nodes` of one element, one `VendorExtension` per vendor, in document order."""
    grouped: dict[Vendor, list[Node]] = {}
    for node in nodes:
        grouped.setdefault(vendor_of(node.namespace), []).append(node)
    return [
        VendorExtension(
            vendor=vendor,
            namespace=members[0].namespace,
            parent=parent,
            parent_id=parent_id,
            xml="".join(_serialise(member, None) for member in members),
            fields=_flatten(members),
        )
        for vendor, members in grouped.items()
    ]


def claims(extension: VendorExtension) -> list[Claim]:
    """The call facts `extension` states, most specific first."""
    reader = _READERS.get(extension.vendor)
    return reader(extension) if reader is not None else []


def _serialise(node: Node, parent_namespace: str | None) -> str:
    declaration = f" xmlns={quoteattr(node.namespace)}" if node.namespace != parent_namespace else ""
    attrs = "".join(f" {name}={quoteattr(value)}" for name, value in node.source_attrs.items())
    inner = escape(node.text) + "".join(_serialise(child, node.namespace) for child in node.children)
    return f"<{node.local}{declaration}{attrs}>{inner}</{node.local}>"


def _flatten(nodes: Sequence[Node]) -> dict[str, str]:
    fields: dict[str, str] = {}
    seen: dict[str, int] = {}
    pending = [(node, "") for node in reversed(nodes)]
    while pending:
        node, prefix = pending.pop()
        label = node.attr("label", "name")
        path = f"{prefix}{node.local}" + (f"[{label}]" if label else "")
        if node.children:
            pending.extend((child, path + "/") for child in reversed(node.children))
            continue
        seen[path] = seen.get(path, 0) + 1
        fields[path if seen[path] == 1 else f"{path}#{seen[path]}"] = node.text
    return fields


def _find(extension: VendorExtension, name: str) -> tuple[str, str] | None:
    """The first field whose last path element is `name` (any case), with its value."""
    wanted = name.lower()
    for path, value in extension.fields.items():
        last = path.rsplit("/", 1)[-1].split("#", 1)[0].split("[", 1)[0]
        if last.lower() == wanted and value:
            return path, value
    return None


def _has_path(extension: VendorExtension, fragment: str) -> bool:
    return any(fragment.lower() in path.lower() for path in extension.fields)


def _simple(extension: VendorExtension, prefix: str, mapping: Sequence[tuple[str, str]]) -> list[Claim]:
    found = []
    for name, fact in mapping:
        hit = _find(extension, name)
        if hit is not None:
            found.append(Claim(fact, hit[1], f"{prefix}{name}", hit[1]))
    return found


def _oracle(extension: VendorExtension) -> list[Claim]:
    found = []
    ucid = _find(extension, "ucid")
    if ucid is not None:
        found.append(Claim("id:ucid", ucid[1].split(";", 1)[0].strip(), "apkt:ucid", ucid[1]))
    call_id = next((v for p, v in extension.fields.items() if p.lower().startswith("header[call-id]/")), None)
    if call_id:
        found.append(Claim("id:call_id", call_id, "apkt:header[Call-ID]", call_id))
    calling = _find(extension, "callingParty")
    if calling is not None and extension.parent == "participant" and extension.parent_id:
        fact = "calling_party" if calling[1].strip().lower() == "true" else "called_party"
        found.append(Claim(fact, extension.parent_id, "apkt:callingParty", calling[1]))
    return found


def _broadworks(extension: VendorExtension) -> list[Claim]:
    found = []
    if _has_path(extension, "callType/origCall"):
        found.append(Claim("direction", "outbound", "broadworks:callType/origCall", "origCall"))
    elif _has_path(extension, "callType/termCall"):
        found.append(Claim("direction", "inbound", "broadworks:callType/termCall", "termCall"))
    provider, group = _find(extension, "serviceProviderID"), _find(extension, "groupID")
    if provider and group:
        tenant = f"{provider[1]}/{group[1]}"
        found.append(Claim("tenant", tenant, "broadworks:serviceProviderID/groupID", tenant))
    elif provider is not None:
        found.append(Claim("tenant", provider[1], "broadworks:serviceProviderID", provider[1]))
    elif group is not None:
        found.append(Claim("tenant", group[1], "broadworks:groupID", group[1]))
    return found + _simple(
        extension,
        "broadworks:",
        (
            ("callingPartyNumber", "calling"),
            ("calledPartyNumber", "called"),
            ("extTrackingID", "id:ext_tracking_id"),
            ("callID", "id:broadworks_call_id"),
        ),
    )


def _ribbon(extension: VendorExtension) -> list[Claim]:
    mapping = (("fromhdr", "calling"), ("tohdr", "called"), ("callid", "id:call_id"), ("gcid", "id:gcid"))
    return _simple(extension, "ribbon:callData/", mapping)


def _audiocodes(extension: VendorExtension) -> list[Claim]:
    mapping = (("GenesysUUID", "id:genesys_uuid"), ("AvayaUCID", "id:ucid"))
    return [
        Claim(c.fact, c.value.strip(), c.source, c.raw) for c in _simple(extension, "audiocodes:", mapping)
    ]


def _metaswitch(extension: VendorExtension) -> list[Claim]:
    found = []
    direction = _find(extension, "callDirection")
    subscriber, other = _find(extension, "subscriberDN"), _find(extension, "otherPartyDN")
    if direction is not None and direction[1].strip().lower() in ("originating", "terminating"):
        outbound = direction[1].strip().lower() == "originating"
        value = "outbound" if outbound else "inbound"
        found.append(Claim("direction", value, "metaswitch:callDirection", direction[1].strip()))
        calling, called = (subscriber, other) if outbound else (other, subscriber)
        if calling is not None:
            found.append(
                Claim("calling", calling[1], f"metaswitch:{calling[0].rsplit('/', 1)[-1]}", calling[1])
            )
        if called is not None:
            found.append(Claim("called", called[1], f"metaswitch:{called[0].rsplit('/', 1)[-1]}", called[1]))
    return found + _simple(extension, "metaswitch:", (("businessGroup", "tenant"),))


def _netsapiens(extension: VendorExtension) -> list[Claim]:
    found = []
    domain = _find(extension, "domain")
    orig, term = _find(extension, "orig_domain"), _find(extension, "term_domain")
    if domain is not None:
        tenant = domain[1].strip().lower()
        outbound = orig is not None and orig[1].strip().lower() == tenant
        inbound = term is not None and term[1].strip().lower() == tenant
        if outbound != inbound:  # both: a call inside the domain, neither in nor out
            side = "orig_domain" if outbound else "term_domain"
            value = "outbound" if outbound else "inbound"
            said = orig if outbound else term
            found.append(
                Claim("direction", value, f"netsapiens:{side}", said[1] if said is not None else None)
            )
    mapping = (
        ("orig_from_uri", "calling"),
        ("term_to_uri", "called"),
        ("domain", "tenant"),
        ("orig_callid", "id:call_id"),
    )
    return found + _simple(extension, "netsapiens:", mapping)


_READERS = {
    Vendor.ORACLE: _oracle,
    Vendor.BROADWORKS: _broadworks,
    Vendor.RIBBON: _ribbon,
    Vendor.AUDIOCODES: _audiocodes,
    Vendor.METASWITCH: _metaswitch,
    Vendor.NETSAPIENS: _netsapiens,
}
