"""Media pipeline: RTP in, aligned multi-channel audio out (receive → place by timestamp → mix → FLAC).

``media`` never imports ``siprec_server`` or ``storage``. Everything except ``receiver``, ``session``,
``writer`` and ``mixdown`` is sans-I/O.
"""

from media.codecs import SUPPORTED, Codec, codec_for
from media.g711 import decode_alaw, decode_ulaw, encode_alaw, encode_ulaw
from media.mixdown import write_mono_mix
from media.ports import PortPool, PortsExhausted
from media.receiver import RtpReceiver
from media.recorder import CallRecorder, RecordingResult, StreamSpec
from media.rtp import RtpHeader, build_rtp, is_rtcp, parse_rtp
from media.session import MediaSession
from media.srtp import SRTP_SUITES, SrtpDecryptor, SrtpKey
from media.stats import StreamStats, StreamStatsSnapshot
from media.timeline import StreamTimeline
from media.writer import MAX_FLAC_CHANNELS, AudioWriter, FlacWriter, recorded_duration

__all__ = [
    "MAX_FLAC_CHANNELS",
    "SRTP_SUITES",
    "SUPPORTED",
    "AudioWriter",
    "CallRecorder",
    "Codec",
    "FlacWriter",
    "MediaSession",
    "PortPool",
    "PortsExhausted",
    "RecordingResult",
    "RtpHeader",
    "RtpReceiver",
    "SrtpDecryptor",
    "SrtpKey",
    "StreamSpec",
    "StreamStats",
    "StreamStatsSnapshot",
    "StreamTimeline",
    "build_rtp",
    "codec_for",
    "decode_alaw",
    "decode_ulaw",
    "encode_alaw",
    "encode_ulaw",
    "is_rtcp",
    "parse_rtp",
    "recorded_duration",
    "write_mono_mix",
]
