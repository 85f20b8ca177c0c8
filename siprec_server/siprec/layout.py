"""Which output channel each recorded stream goes to (design guide §2.5).

A stream is matched to the metadata by its `a=label` (RFC 7865 §6.5), then to its sender by the participants'
`send` lists. The *parties* are the participants that send at least one of the offered streams. The *caller*
is the first party by `associate-time` when every party has a credible time (`parse_timestamp`: present,
readable, not before 2000), otherwise the first in document order; the others follow in the same order.

Layout rules, by the number of m-lines that are recorded (m-lines answered with port 0 or not audio can be
left out with `recorded`: they take no channel, and their `stream_channels` entry is 0):

- **No or one m-line → mono.** One channel; the stream (if any) is channel 0. Its participant is its sender
  when the metadata names exactly one, else unknown (a mixed stream, as BroadWorks, Metaswitch and FreeSWITCH
  send, has both parties).
- **Two m-lines → stereo, caller left.** If each stream is sent by a different one of the first two parties,
  each goes to its sender's channel: caller 0 (left), callee 1 (right), `source="metadata"`. Otherwise (no
  metadata, an unlabelled stream, a label the metadata does not know, a stream without or with an ambiguous
  sender) m-line order decides: the first left, the second right, `source="order"`.
- **Three or more m-lines → one channel per party** (a conference, or one party with several streams). Each
  party that is the only sender of some stream gets a channel, in the order above (the caller on channel 0);
  each stream goes to its sender's channel. A stream with no known sender (no metadata, no or an unknown
  label, no `send`) or with several (a mix) gets a channel of its own, after the parties', in m-line order.
  The result is mono, stereo or multichannel by the number of channels it needs: RFC 7865 Appendix A (four
  streams, two parties) is stereo. FLAC holds at most 8 channels: channels beyond the 7th share the 8th
  (mixed, with saturation), whose participant is then unknown. `source` is "metadata" when every stream was
  placed by its sender, "order" when none was, "partial" otherwise.
- **Streams added mid-call** (`extend_layout`): the file's channels are fixed once it is open, so existing
  m-lines keep their channel and a new m-line goes to the channel of its sender if that party already has
  one, else to the last channel (in stereo: other parties join the callee's side).

`participants[c]` names channel c's party (its AOR) where the metadata says who it is; `participant_ids[c]` is
that party's participant id. A mono mix of a multichannel file is made after the call by
`media.write_mono_mix` when the deployment asks for one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from .metadata import Participant, RecordingMetadata, parse_timestamp

__all__ = ["MAX_CHANNELS", "ChannelLayout", "LayoutKind", "assign_channels", "extend_layout"]

MAX_CHANNELS = 8  # FLAC's limit (RFC 9639 §9.1.3)


class LayoutKind(StrEnum):
    MONO = "mono"
    STEREO = "stereo"
    MULTI = "multi"


@dataclass(frozen=True, slots=True, kw_only=True)
class ChannelLayout:
    """`stream_channels[i]`: the channel of the m-line at index i; `participants[c]`: the AOR on channel c.

    `participant_ids[c]` is the RFC 7865 participant id on channel c (empty when not worked out); it does not
    take part in comparisons.
    """

    channels: int
    stream_channels: list[int]
    participants: list[str | None]
    source: str
    participant_ids: list[str | None] = field(default_factory=list, compare=False)

    @property
    def kind(self) -> LayoutKind:
        if self.channels == 1:
            return LayoutKind.MONO
        return LayoutKind.STEREO if self.channels == 2 else LayoutKind.MULTI


def assign_channels(
    metadata: RecordingMetadata | None,
    labels: Sequence[str | None],
    *,
    recorded: Sequence[bool] | None = None,
) -> ChannelLayout:
    """Lay out the m-lines whose `a=label` values are `labels` (in m-line order) on output channels;
    `recorded[i]` False leaves m-line i out (all are recorded by default)."""
    if recorded is not None and len(recorded) != len(labels):
        raise ValueError(f"{len(labels)} labels but {len(recorded)} recorded flags")
    kept = [i for i in range(len(labels)) if recorded is None or recorded[i]]
    senders = [_sender_ids(metadata, labels[i]) for i in kept]
    if len(kept) <= 1:
        layout = _mono(metadata, senders)
    elif len(kept) == 2:
        layout = _stereo(metadata, senders)
    else:
        layout = _per_party(metadata, senders)
    if len(kept) == len(labels):
        return layout
    stream_channels = [0] * len(labels)
    for position, index in enumerate(kept):
        stream_channels[index] = layout.stream_channels[position]
    return ChannelLayout(
        channels=layout.channels,
        stream_channels=stream_channels,
        participants=layout.participants,
        source=layout.source,
        participant_ids=layout.participant_ids,
    )


def extend_layout(
    layout: ChannelLayout, metadata: RecordingMetadata | None, labels: Sequence[str | None]
) -> ChannelLayout:
    """The layout after a re-offer whose m-lines carry `labels`: the first `len(layout.stream_channels)` are
    the m-lines laid out before (they keep their channels), the rest are new. A new m-line that will not be
    recorded may be given any label; its channel is simply not used."""
    known = len(layout.stream_channels)
    if len(labels) <= known:
        return layout
    ids = layout.participant_ids or [None] * layout.channels
    by_id = {pid: channel for channel, pid in enumerate(ids) if pid is not None}
    by_aor = {aor: channel for channel, aor in enumerate(layout.participants) if aor is not None}
    aor_of = _by_id(metadata) if metadata is not None else {}
    stream_channels = list(layout.stream_channels)
    placed_all = True
    for label in labels[known:]:
        senders = _sender_ids(metadata, label)
        channel = None
        if len(senders) == 1:
            sender = senders[0]
            channel = by_id.get(sender)
            party = aor_of.get(sender)
            if channel is None and party is not None and party.aor is not None:
                channel = by_aor.get(party.aor)
        if channel is None:
            placed_all = False
            channel = layout.channels - 1
        stream_channels.append(channel)
    source = layout.source
    if source == "metadata" and not placed_all:
        source = "partial"
    return ChannelLayout(
        channels=layout.channels,
        stream_channels=stream_channels,
        participants=list(layout.participants),
        source=source,
        participant_ids=list(ids),
    )


def _mono(metadata: RecordingMetadata | None, senders: list[list[str]]) -> ChannelLayout:
    party = None
    if metadata is not None and senders and len(senders[0]) == 1:
        party = _by_id(metadata).get(senders[0][0])
    aor = party.aor if party is not None else None
    return ChannelLayout(
        channels=1,
        stream_channels=[0] * len(senders),
        participants=[aor],
        source="metadata" if aor is not None else "order",
        participant_ids=[party.id if party is not None and aor is not None else None],
    )


def _stereo(metadata: RecordingMetadata | None, senders: list[list[str]]) -> ChannelLayout:
    order_layout = ChannelLayout(
        channels=2,
        stream_channels=[0, 1],
        participants=[None, None],
        source="order",
        participant_ids=[None, None],
    )
    parties = _parties(metadata, senders)
    if len(parties) < 2:
        return order_layout
    channel_of = {parties[0].id: 0, parties[1].id: 1}
    placed: list[int] = []
    for stream_senders in senders:
        channels = {channel_of[sender] for sender in stream_senders if sender in channel_of}
        if len(channels) != 1:
            return order_layout
        placed.append(channels.pop())
    if placed[0] == placed[1]:
        return order_layout
    return ChannelLayout(
        channels=2,
        stream_channels=placed,
        participants=[parties[0].aor, parties[1].aor],
        source="metadata",
        participant_ids=[parties[0].id, parties[1].id],
    )


def _per_party(metadata: RecordingMetadata | None, senders: list[list[str]]) -> ChannelLayout:
    sole = {stream_senders[0] for stream_senders in senders if len(stream_senders) == 1}
    parties = [party for party in _parties(metadata, senders) if party.id in sole]
    channel_of = {party.id: channel for channel, party in enumerate(parties)}
    participants: list[str | None] = [party.aor for party in parties]
    ids: list[str | None] = [party.id for party in parties]
    stream_channels: list[int] = []
    by_sender = 0
    for stream_senders in senders:
        if len(stream_senders) == 1:
            stream_channels.append(channel_of[stream_senders[0]])
            by_sender += 1
        else:
            stream_channels.append(len(participants))  # unknown or mixed: a channel of its own
            participants.append(None)
            ids.append(None)
    if len(participants) > MAX_CHANNELS:
        last = MAX_CHANNELS - 1
        stream_channels = [min(channel, last) for channel in stream_channels]
        participants = [*participants[:last], None]
        ids = [*ids[:last], None]
    source = "metadata" if by_sender == len(senders) else "partial" if by_sender else "order"
    return ChannelLayout(
        channels=len(participants),
        stream_channels=stream_channels,
        participants=participants,
        source=source,
        participant_ids=ids,
    )


def _sender_ids(metadata: RecordingMetadata | None, label: str | None) -> list[str]:
    if metadata is None or label is None:
        return []
    stream = metadata.stream_for_label(label)
    if stream is None:
        return []
    return list(dict.fromkeys(participant.id for participant in metadata.senders_of(stream.id)))


def _by_id(metadata: RecordingMetadata) -> dict[str, Participant]:
    return {participant.id: participant for participant in metadata.participants}


def _parties(metadata: RecordingMetadata | None, senders: Sequence[Sequence[str]]) -> list[Participant]:
    """Participants sending an offered stream, caller first."""
    if metadata is None:
        return []
    sending = {sender for stream_senders in senders for sender in stream_senders}
    parties: list[Participant] = []
    for participant in metadata.participants:
        if participant.id in sending:
            sending.discard(participant.id)  # a participant listed twice counts once, where it first appears
            parties.append(participant)
    times = [parse_timestamp(participant.associate_time) for participant in parties]
    if parties and all(time is not None for time in times):
        order = sorted(range(len(parties)), key=lambda index: (times[index], index))
        parties = [parties[index] for index in order]
    return parties
