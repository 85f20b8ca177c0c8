"""Which output channel each recorded stream goes to (design guide §2.5).

Rules, in order:

- No or one m-line: one channel; the stream (if any) is channel 0. Its participant is its sender when the
  metadata names exactly one, else unknown (a mixed stream, as BroadWorks and Metaswitch send, has both).
- Two or more m-lines: two channels, the caller on the left (0), the callee on the right (1). The parties are
  the participants that send at least one of the offered streams (a stream is matched to the metadata by its
  `a=label`, then to its sender by the participant's `send` list). The caller is the first of them by
  `associate-time` when every one of them has a credible time (`parse_timestamp`), otherwise by document
  order; the callee is the next.
- Two m-lines: if each stream is sent by a different one of the two parties, each goes to its sender's
  channel (`source="metadata"`). Otherwise, so no metadata at all, an unlabelled stream, a label the metadata
  does not know, a stream without or with an ambiguous sender: m-line order, the first left, the second right
  (`source="order"`).
- More than two m-lines (for now, until multichannel recording): each stream whose sender is one of the two
  parties goes to that party's channel; every other stream goes to channel `index % 2`. `source` is
  "metadata" only if every stream was placed by its sender.

`participants` names each channel's party (its AOR) only when the layout came from the metadata.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from .metadata import Participant, RecordingMetadata, parse_timestamp

__all__ = ["ChannelLayout", "assign_channels"]


@dataclass(frozen=True, slots=True, kw_only=True)
class ChannelLayout:
    """`stream_channels[i]`: the channel of the m-line at index i; `participants[c]`: the AOR on channel c."""

    channels: int
    stream_channels: list[int]
    participants: list[str | None]
    source: str


def assign_channels(metadata: RecordingMetadata | None, labels: Sequence[str | None]) -> ChannelLayout:
    """Lay out the m-lines whose `a=label` values are `labels` (in m-line order) on output channels."""
    senders = [_sender_ids(metadata, label) for label in labels]
    if len(labels) <= 1:
        aor = None
        if metadata is not None and senders and len(senders[0]) == 1:
            aor = _by_id(metadata)[senders[0][0]].aor
        return ChannelLayout(
            channels=1,
            stream_channels=[0] * len(labels),
            participants=[aor],
            source="metadata" if aor is not None else "order",
        )
    parties = _parties(metadata, senders)
    order_layout = ChannelLayout(
        channels=2,
        stream_channels=[index % 2 for index in range(len(labels))],
        participants=[None, None],
        source="order",
    )
    if metadata is None or len(parties) < 2:
        return order_layout
    channel_of = {parties[0].id: 0, parties[1].id: 1}
    placed: list[int | None] = []
    for stream_senders in senders:
        channels = {channel_of[sender] for sender in stream_senders if sender in channel_of}
        placed.append(channels.pop() if len(channels) == 1 else None)
    all_placed = all(channel is not None for channel in placed)
    if len(labels) == 2 and (not all_placed or placed[0] == placed[1]):
        return order_layout
    stream_channels = [index % 2 if channel is None else channel for index, channel in enumerate(placed)]
    if not all_placed:
        return ChannelLayout(
            channels=2, stream_channels=stream_channels, participants=[None, None], source="order"
        )
    return ChannelLayout(
        channels=2,
        stream_channels=stream_channels,
        participants=[parties[0].aor, parties[1].aor],
        source="metadata",
    )


def _sender_ids(metadata: RecordingMetadata | None, label: str | None) -> list[str]:
    if metadata is None or label is None:
        return []
    stream = metadata.stream_for_label(label)
    if stream is None:
        return []
    return [participant.id for participant in metadata.senders_of(stream.id)]


def _by_id(metadata: RecordingMetadata) -> dict[str, Participant]:
    return {participant.id: participant for participant in metadata.participants}


def _parties(metadata: RecordingMetadata | None, senders: Sequence[Sequence[str]]) -> list[Participant]:
    """Participants sending an offered stream, caller first."""
    if metadata is None:
        return []
    sending = {sender for stream_senders in senders for sender in stream_senders}
    parties = [participant for participant in metadata.participants if participant.id in sending]
    times = [parse_timestamp(participant.associate_time) for participant in parties]
    if parties and all(time is not None for time in times):
        order = sorted(range(len(parties)), key=lambda index: (times[index], index))
        parties = [parties[index] for index in order]
    return parties
