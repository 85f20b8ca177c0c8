"""Reading the SRS's SDP answer: where each labelled stream's RTP goes (RFC 3264 §6, RFC 4574).

Only what a sender needs: the connection address (session or media level ``c=``), each m-line's port, payload
types, direction and label. An answer that names no usable destination for a stream is an error, reported with
the reason, because it is a recording that cannot be made.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

__all__ = ["AnswerError", "AnsweredStream", "SdpAnswer", "parse_answer"]


class AnswerError(ValueError):
    """The answer is unusable for the offer we made."""


@dataclass(frozen=True, slots=True, kw_only=True)
class AnsweredStream:
    label: str | None
    host: str
    port: int
    payload_types: tuple[int, ...]
    direction: str  # sendrecv when the m-line names none (RFC 3264 §5.1)


@dataclass(frozen=True, slots=True, kw_only=True)
class SdpAnswer:
    streams: tuple[AnsweredStream, ...]

    def by_label(self) -> Mapping[str, AnsweredStream]:
        return {stream.label: stream for stream in self.streams if stream.label is not None}

    def destination(self, label: str, payload_type: int) -> tuple[str, int]:
        """Where to send the stream offered as ``label``; it must be accepted with ``payload_type``."""
        stream = self.by_label().get(label)
        if stream is None:
            raise AnswerError(f"the answer has no m-line labelled {label!r}")
        if stream.port == 0:
            raise AnswerError(f"the stream labelled {label!r} was declined (port 0)")
        if stream.direction not in ("recvonly", "sendrecv"):
            raise AnswerError(f"the stream labelled {label!r} is answered {stream.direction}, not recvonly")
        if payload_type not in stream.payload_types:
            raise AnswerError(
                f"the stream labelled {label!r} was answered with payload types {stream.payload_types}, "
                f"not {payload_type}"
            )
        return stream.host, stream.port


@dataclass(slots=True)
class _Media:
    port: int
    payload_types: tuple[int, ...]
    host: str | None = None
    label: str | None = None
    direction: str = "sendrecv"  # when the m-line names none (RFC 3264 §5.1)


def parse_answer(body: bytes) -> SdpAnswer:
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise AnswerError("the SDP answer is not UTF-8") from exc
    session_host: str | None = None
    media: list[_Media] = []
    for raw in text.splitlines():
        line = raw.strip()
        if len(line) < 2 or line[1] != "=":
            continue
        kind, value = line[0], line[2:]
        if kind == "m":
            media.append(_media_line(value))
        elif kind == "c":
            if media:
                media[-1].host = _connection(value)
            else:
                session_host = _connection(value)
        elif kind == "a" and media:
            name, _, argument = value.partition(":")
            if name == "label":
                media[-1].label = argument.strip()
            elif name in ("sendonly", "recvonly", "sendrecv", "inactive"):
                media[-1].direction = name
    if not media:
        raise AnswerError("the SDP answer has no m-line")
    streams = []
    for item in media:
        host = item.host or session_host
        if host is None:
            raise AnswerError("an m-line of the answer has no connection address (c=)")
        streams.append(
            AnsweredStream(
                label=item.label,
                host=host,
                port=item.port,
                payload_types=item.payload_types,
                direction=item.direction,
            )
        )
    return SdpAnswer(streams=tuple(streams))


def _media_line(value: str) -> _Media:
    parts = value.split()
    if len(parts) < 4 or parts[0] != "audio":
        raise AnswerError(f"unexpected m-line in the answer: m={value}")
    try:
        port = int(parts[1].split("/", 1)[0])
        payload_types = tuple(int(pt) for pt in parts[3:])
    except ValueError as exc:
        raise AnswerError(f"unreadable m-line in the answer: m={value}") from exc
    if not 0 <= port < 65536:
        raise AnswerError(f"port out of range in the answer: m={value}")
    return _Media(port=port, payload_types=payload_types)


def _connection(value: str) -> str:
    parts = value.split()
    if len(parts) != 3 or parts[0] != "IN" or parts[1] not in ("IP4", "IP6"):
        raise AnswerError(f"unreadable connection line in the answer: c={value}")
    return parts[2].split("/", 1)[0]
