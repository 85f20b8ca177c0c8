"""SDP offers from recording clients (RFC 4566) and the recorder's answer to them (RFC 3264 §6).

Parsing is tolerant where SRCs are sloppy: bare LF line ends, trailing whitespace, unknown line types and
attributes (kept), attribute names in any case, static payload types without `a=rtpmap` (RFC 3551 §6). It
refuses, with `SdpError` (answered 488 with a Warning), what cannot be an SDP at all: no `v=0` first, a line
that is not `<type>=<value>`, no or a short `o=` line, an unreadable `c=` or `m=` line, a malformed
`a=rtpmap`.

The answer (design guide §2.3) is one `application/sdp` body: one m-line per offered m-line in the same order;
for each, exactly one codec (the first in the offerer's order that we take) plus telephone-event when offered;
`a=label` echoed unchanged, because SRCs that miss their label send no RTP; `a=recvonly`, or `a=inactive` when
the offer is inactive/recvonly or holds with `c=0.0.0.0`. A stream we cannot take (port 0 offered, not audio,
an RTP profile or SDES keying outside the listener's SRTP policy (see :mod:`.crypto`), no common codec) is
rejected with port 0 and the offered format list (RFC 3264 §6). An accepted `RTP/SAVP` stream is answered
with the offered profile and one `a=crypto` line: the chosen tag and suite with a fresh key of ours.
"""

from __future__ import annotations

import ipaddress
import re
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from media.srtp import SrtpKey

from .crypto import SrtpPolicy, answer_crypto, negotiate_srtp
from .errors import SdpError

__all__ = [
    "STATIC_PAYLOAD_TYPES",
    "MediaDescription",
    "NegotiatedStream",
    "Origin",
    "RtpMap",
    "SdpAnswer",
    "SessionDescription",
    "build_answer",
    "parse_sdp",
]

_DIRECTIONS = frozenset({"sendrecv", "sendonly", "recvonly", "inactive"})
_LINE = re.compile(r"^([a-zA-Z])=(.*)$")
_RTPMAP = re.compile(r"^(\d{1,3})\s+([^/\s]+)/(\d+)(?:/(\d+))?$", re.ASCII)
# RFC 3551 §4.5: these codecs always run an 8000 Hz RTP clock (G.722 too, for 16 kHz audio).
_FIXED_CLOCK = {"pcmu": 8000, "pcma": 8000, "g722": 8000, "g729": 8000}
_CodecEntry = tuple[
    str, int | None, int | None
]  # a codec we take: lowercased name, clock, channels (None: any)


@dataclass(frozen=True, slots=True, kw_only=True)
class RtpMap:
    """An `a=rtpmap` value: encoding name as sent, RTP clock rate, audio channels."""

    encoding: str
    clock_rate: int
    channels: int = 1


# RFC 3551 §6 Table 4: audio payload types that need no a=rtpmap.
STATIC_PAYLOAD_TYPES: dict[int, RtpMap] = {
    0: RtpMap(encoding="PCMU", clock_rate=8000),
    3: RtpMap(encoding="GSM", clock_rate=8000),
    4: RtpMap(encoding="G723", clock_rate=8000),
    8: RtpMap(encoding="PCMA", clock_rate=8000),
    9: RtpMap(encoding="G722", clock_rate=8000),
    13: RtpMap(encoding="CN", clock_rate=8000),
    15: RtpMap(encoding="G728", clock_rate=8000),
    18: RtpMap(encoding="G729", clock_rate=8000),
}


@dataclass(frozen=True, slots=True, kw_only=True)
class Origin:
    """The `o=` line (RFC 4566 §5.2); ids kept as text, they may exceed 64 bits."""

    username: str
    session_id: str
    session_version: str
    nettype: str
    addrtype: str
    address: str


@dataclass(frozen=True, slots=True, kw_only=True)
class MediaDescription:
    """One m-line with what the recorder needs of it.

    `rtpmap` resolves every offered static payload type too; `direction` and `connection` (the address only)
    are inherited from session level when the m-line has none; `attributes` keeps every other `a=` line
    as (lowercased name, value or None).
    """

    media: str
    port: int
    proto: str
    formats: list[str]
    rtpmap: dict[int, RtpMap]
    fmtp: dict[int, str]
    label: str | None
    direction: str
    connection: str | None
    rtcp_port: int | None
    crypto: list[str]
    ptime: int | None
    attributes: list[tuple[str, str | None]]


@dataclass(frozen=True, slots=True, kw_only=True)
class SessionDescription:
    """A parsed SDP; `connection` is the session-level address, `attributes` the other session `a=` lines."""

    origin: Origin
    session_name: str
    connection: str | None
    media: list[MediaDescription]
    direction: str = "sendrecv"
    attributes: list[tuple[str, str | None]]


@dataclass(frozen=True, slots=True, kw_only=True)
class NegotiatedStream:
    """What the answer agreed for the m-line at `index`; `port` is ours, 0 when the stream is rejected.

    `remote_host` is None when the offer names no address or the unspecified one (hold). `srtp_key` is the
    SRC's SDES key for an SRTP stream (what its packets decrypt with), None for plain RTP.
    """

    index: int
    label: str | None
    port: int
    payload_type: int | None
    codec: str | None
    clock_rate: int
    telephone_event_pt: int | None
    direction: str
    remote_host: str | None
    remote_port: int
    srtp_key: SrtpKey | None = None

    @property
    def accepted(self) -> bool:
        return self.port != 0


@dataclass(frozen=True, slots=True, kw_only=True)
class SdpAnswer:
    body: bytes
    streams: list[NegotiatedStream]


class _MediaBuilder:
    __slots__ = (
        "attributes",
        "connection",
        "crypto",
        "direction",
        "fmtp",
        "formats",
        "label",
        "media",
        "port",
        "proto",
        "ptime",
        "rtcp_port",
        "rtpmap",
    )

    def __init__(self, value: str) -> None:
        fields = value.split()
        if len(fields) < 4:
            raise SdpError(f"m= line {value!r} needs media, port, proto and at least one format")
        port_text = fields[1].split("/", 1)[0]  # "49170/2": a port count, RFC 4566 §5.14
        if not _digits(port_text) or int(port_text) > 65535:
            raise SdpError(f"m= line {value!r} has no valid port")
        self.media = fields[0].lower()
        self.port = int(port_text)
        self.proto = fields[2]
        self.formats = fields[3:]
        self.rtpmap: dict[int, RtpMap] = {}
        self.fmtp: dict[int, str] = {}
        self.label: str | None = None
        self.direction: str | None = None
        self.connection: str | None = None
        self.rtcp_port: int | None = None
        self.crypto: list[str] = []
        self.ptime: int | None = None
        self.attributes: list[tuple[str, str | None]] = []

    def attribute(self, name: str, value: str | None) -> None:
        if name in _DIRECTIONS:
            self.direction = name
        elif name == "rtpmap" and value is not None:
            payload_type, rtpmap = _parse_rtpmap(value)
            self.rtpmap[payload_type] = rtpmap
        elif name == "fmtp" and value is not None:
            fmt, _, params = value.partition(" ")
            if _digits(fmt):
                self.fmtp[int(fmt)] = params.strip()
        elif name == "label" and value is not None:
            self.label = value.strip()
        elif name == "rtcp" and value is not None and _digits(value.split(" ", 1)[0]):
            self.rtcp_port = int(value.split(" ", 1)[0])
        elif name == "crypto" and value is not None:
            self.crypto.append(value)
        elif name == "ptime" and value is not None:
            self.ptime = _parse_ptime(value)
        else:
            self.attributes.append((name, value))

    def build(
        self, session_direction: str, session_connection: str | None, ptime: int | None
    ) -> MediaDescription:
        rtpmap: dict[int, RtpMap] = {}
        for fmt in self.formats:
            if _digits(fmt) and int(fmt) in STATIC_PAYLOAD_TYPES:
                rtpmap[int(fmt)] = STATIC_PAYLOAD_TYPES[int(fmt)]
        rtpmap.update(self.rtpmap)  # an explicit a=rtpmap wins over the static table
        return MediaDescription(
            media=self.media,
            port=self.port,
            proto=self.proto,
            formats=self.formats,
            rtpmap=rtpmap,
            fmtp=self.fmtp,
            label=self.label,
            direction=self.direction or session_direction,
            connection=self.connection or session_connection,
            rtcp_port=self.rtcp_port,
            crypto=self.crypto,
            ptime=self.ptime if self.ptime is not None else ptime,
            attributes=self.attributes,
        )


def parse_sdp(data: bytes | str) -> SessionDescription:
    """Parse an SDP offer; raises `SdpError` for what cannot be an SDP."""
    text = _decode(data) if isinstance(data, bytes) else data
    lines = [line.rstrip() for line in text.replace("\r\n", "\n").split("\n")]
    lines = [line for line in lines if line]
    if not lines or lines[0].replace(" ", "") != "v=0":
        raise SdpError("SDP does not start with v=0")
    origin: Origin | None = None
    session_name = ""
    connection: str | None = None
    direction = "sendrecv"
    ptime: int | None = None
    attributes: list[tuple[str, str | None]] = []
    media: list[_MediaBuilder] = []
    for line in lines[1:]:
        match = _LINE.match(line)
        if match is None:
            raise SdpError(f"SDP line {line[:40]!r} is not <type>=<value>")
        kind, value = match.group(1).lower(), match.group(2).strip()
        current = media[-1] if media else None
        if kind == "m":
            media.append(_MediaBuilder(value))
        elif kind == "o" and current is None:
            origin = _parse_origin(value)
        elif kind == "s" and current is None:
            session_name = value
        elif kind == "c":
            address = _parse_connection(value)
            if current is None:
                connection = address
            else:
                current.connection = address
        elif kind == "a":
            name, colon, attr_value = value.partition(":")
            name = name.strip().lower()
            parsed_value = attr_value.strip() if colon else None
            if current is not None:
                current.attribute(name, parsed_value)
            elif name in _DIRECTIONS:
                direction = name
            elif name == "ptime" and parsed_value is not None:
                ptime = _parse_ptime(parsed_value)
            else:
                attributes.append((name, parsed_value))
        # Every other line type (i, u, e, p, b, t, r, z, k, unknown ones) carries nothing we use.
    if origin is None:
        raise SdpError("SDP has no o= line")
    return SessionDescription(
        origin=origin,
        session_name=session_name,
        connection=connection,
        media=[builder.build(direction, connection, ptime) for builder in media],
        direction=direction,
        attributes=attributes,
    )


def build_answer(
    offer: SessionDescription,
    *,
    address: str,
    ports: Sequence[int],
    codecs: Sequence[str] = ("PCMU", "PCMA"),
    session_id: int,
    session_version: int,
    user: str = "hangtar",
    srtp: SrtpPolicy = SrtpPolicy.OFF,
    random_bytes: Callable[[int], bytes] = secrets.token_bytes,
    inactive: bool = False,
) -> SdpAnswer:
    """Answer `offer` for a recorder listening on `address`, `ports[i]` for the m-line at index i.

    ``inactive``: every accepted stream is answered ``a=inactive`` (RFC 3264 §6.1: nothing is sent): a call
    the recording policy does not let us record keeps its session, and no media flows.

    A port of 0 rejects that m-line. `codecs` are what we decode: each an encoding name (``PCMU``), optionally
    with the RTP clock rate and channel count it must be offered with (``L16/16000/1``, ``opus/48000``); a
    malformed entry raises ValueError. `srtp` is the listener's policy; `random_bytes(n)` supplies our SDES
    keys (injected so that tests are deterministic).
    """
    if len(ports) != len(offer.media):
        raise ValueError(f"{len(ports)} ports given for {len(offer.media)} offered m-lines")
    if not address or any(c.isspace() for c in address + user) or not user:
        raise ValueError("address and user must be non-empty and contain no whitespace")
    addrtype = "IP6" if ":" in address else "IP4"
    lines = [
        "v=0",
        f"o={user} {session_id} {session_version} IN {addrtype} {address}",
        "s=-",
        f"c=IN {addrtype} {address}",
        "t=0 0",
    ]
    wanted = [_codec_entry(codec) for codec in codecs]
    streams: list[NegotiatedStream] = []
    for index, (media, port) in enumerate(zip(offer.media, ports, strict=True)):
        stream, media_lines = _answer_media(index, media, port, wanted, srtp, random_bytes, inactive)
        streams.append(stream)
        lines.extend(media_lines)
    return SdpAnswer(body=("\r\n".join(lines) + "\r\n").encode("utf-8"), streams=streams)


def _answer_media(
    index: int,
    media: MediaDescription,
    port: int,
    wanted: Sequence[_CodecEntry],
    policy: SrtpPolicy,
    random_bytes: Callable[[int], bytes],
    inactive: bool = False,
) -> tuple[NegotiatedStream, list[str]]:
    remote_host = None if media.connection is None or _unspecified(media.connection) else media.connection
    chosen = None
    security = negotiate_srtp(media.proto, media.crypto, policy)
    if port and media.port and media.media == "audio" and security.accepted:
        chosen = _choose_codec(media, wanted)
    if chosen is None:
        # RFC 3264 §6: a rejected stream keeps its m-line with port 0 and the offered formats.
        lines = [f"m={media.media} 0 {media.proto} {' '.join(media.formats)}"]
        if media.label is not None:
            lines.append(f"a=label:{media.label}")
        rejected = NegotiatedStream(
            index=index,
            label=media.label,
            port=0,
            payload_type=None,
            codec=None,
            clock_rate=0,
            telephone_event_pt=None,
            direction="inactive",
            remote_host=remote_host,
            remote_port=media.port,
        )
        return rejected, lines
    payload_type, rtpmap = chosen
    event_pt = _choose_telephone_event(media, rtpmap.clock_rate)
    formats = [payload_type] if event_pt is None else [payload_type, event_pt]
    lines = [f"m=audio {port} {media.proto} {' '.join(str(pt) for pt in formats)}"]
    for pt in formats:
        lines.append(f"a=rtpmap:{pt} {_format_rtpmap(media.rtpmap[pt])}")
        if media.fmtp.get(pt):
            lines.append(f"a=fmtp:{pt} {media.fmtp[pt]}")
    if media.ptime is not None:
        lines.append(f"a=ptime:{media.ptime}")
    if media.label is not None:
        lines.append(f"a=label:{media.label}")
    if security.choice is not None:
        lines.append(f"a=crypto:{answer_crypto(security.choice, random_bytes)}")  # RFC 4568 §7.1.2
    # RFC 3264 §6.1: we only receive. Nothing flows while the offer holds (c=0.0.0.0, RFC 3264 §8.4) or
    # does not send.
    hold = media.connection is not None and _unspecified(media.connection)
    direction = "inactive" if inactive or hold or media.direction in ("inactive", "recvonly") else "recvonly"
    lines.append(f"a={direction}")
    stream = NegotiatedStream(
        index=index,
        label=media.label,
        port=port,
        payload_type=payload_type,
        codec=rtpmap.encoding.upper(),
        clock_rate=rtpmap.clock_rate,
        telephone_event_pt=event_pt,
        direction=direction,
        remote_host=remote_host,
        remote_port=media.port,
        srtp_key=security.choice.remote_key if security.choice is not None else None,
    )
    return stream, lines


def _codec_entry(text: str) -> _CodecEntry:
    name, *numbers = text.strip().split("/")
    if not name or len(numbers) > 2 or not all(_digits(n) for n in numbers):
        raise ValueError(f"codec {text!r} is not '<name>[/<clock rate>[/<channels>]]'")
    clock = int(numbers[0]) if numbers else None
    channels = int(numbers[1]) if len(numbers) == 2 else None
    return name.lower(), clock, channels


def _choose_codec(media: MediaDescription, wanted: Sequence[_CodecEntry]) -> tuple[int, RtpMap] | None:
    for fmt in media.formats:  # RFC 3264 §6.1: the offerer's preference order
        if not _digits(fmt) or int(fmt) not in media.rtpmap:
            continue
        rtpmap = media.rtpmap[int(fmt)]
        name = rtpmap.encoding.lower()
        if _FIXED_CLOCK.get(name, rtpmap.clock_rate) != rtpmap.clock_rate:
            continue  # e.g. G722/16000: RFC 3551 §4.5.2 fixes its RTP clock at 8000 Hz
        for entry_name, clock, channels in wanted:
            if (
                entry_name == name
                and clock in (None, rtpmap.clock_rate)
                and channels in (None, rtpmap.channels)
            ):
                return int(fmt), rtpmap
    return None


def _choose_telephone_event(media: MediaDescription, clock_rate: int) -> int | None:
    events = [
        int(fmt)
        for fmt in media.formats
        if _digits(fmt)
        and int(fmt) in media.rtpmap
        and media.rtpmap[int(fmt)].encoding.lower() == "telephone-event"
    ]
    # RFC 4733 §2.1: the event clock matches the audio codec's; take a mismatched one only if it is all.
    matching = [pt for pt in events if media.rtpmap[pt].clock_rate == clock_rate]
    candidates = matching or events
    return candidates[0] if candidates else None


def _format_rtpmap(rtpmap: RtpMap) -> str:
    suffix = f"/{rtpmap.channels}" if rtpmap.channels != 1 else ""
    return f"{rtpmap.encoding}/{rtpmap.clock_rate}{suffix}"


def _digits(text: str) -> bool:
    """ASCII digits only: str.isdigit() also accepts "³" and other digits int() refuses."""
    return text.isascii() and text.isdigit()


def _unspecified(address: str) -> bool:
    try:
        return ipaddress.ip_address(address).is_unspecified
    except ValueError:
        return False


def _decode(data: bytes) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("latin-1")  # RFC 4566 §5.3: s= may use another charset


def _parse_origin(value: str) -> Origin:
    fields = value.split()
    if len(fields) != 6:
        raise SdpError(f"o= line {value!r} does not have six fields")
    username, session_id, session_version, nettype, addrtype, address = fields
    return Origin(
        username=username,
        session_id=session_id,
        session_version=session_version,
        nettype=nettype,
        addrtype=addrtype,
        address=address,
    )


def _parse_connection(value: str) -> str:
    fields = value.split()
    if len(fields) != 3 or fields[0].upper() != "IN" or fields[1].upper() not in ("IP4", "IP6"):
        raise SdpError(f"c= line {value!r} is not 'IN IP4|IP6 <address>'")
    return fields[2].split("/", 1)[0]  # drop a multicast TTL / address count


def _parse_rtpmap(value: str) -> tuple[int, RtpMap]:
    match = _RTPMAP.match(value.strip())
    if match is None or int(match.group(1)) > 127:
        raise SdpError(f"a=rtpmap:{value} is not '<payload type> <encoding>/<clock rate>[/<channels>]'")
    channels = int(match.group(4)) if match.group(4) else 1
    rtpmap = RtpMap(encoding=match.group(2), clock_rate=int(match.group(3)), channels=channels)
    return int(match.group(1)), rtpmap


def _parse_ptime(value: str) -> int | None:
    try:
        ptime = round(float(value))
    except (ValueError, OverflowError):  # "20ms", "inf", "nan"
        return None
    return ptime if 0 < ptime <= 1000 else None
