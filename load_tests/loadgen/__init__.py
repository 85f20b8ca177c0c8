"""A SIPREC load generator for Hangtár and the capacity run built on it.

Generator processes (:mod:`.worker`) place real SIPREC calls over UDP (:mod:`.sip_uac`, :mod:`.metadata`)
and send two real RTP streams per call, one pure tone per leg (:mod:`.tones`, :mod:`.rtp_legs`), from one
20 ms tick per process (:mod:`.pacer`), impaired as asked (:mod:`.impairments`). The capacity runner
(:mod:`.runner`) starts the server, the processes and the monitor (:mod:`.monitor`), verifies every recording
(:mod:`.verify`) and writes the report (:mod:`.report`).
"""

from .audio_checks import AudioFacts, ChannelFacts, analyse_file, dominant_frequency
from .figures import StepFigures
from .impairments import Fate, LegImpairer
from .metadata import offer_body, parties, recording_metadata, sdp_offer
from .pacer import Pacer
from .profile import PTIME, Codec, Impairments, WorkerSpec
from .report import write_report
from .results import CallResult, Progress
from .rtp_legs import LegResult, RtpLeg
from .run_records import CapacityOptions, CapacityRun, StepReport
from .runner import run_capacity
from .sdp_answer import AnswerError, SdpAnswer, parse_answer
from .sip_uac import Answered, Datagram, Finished, Outcome, Provisional, SiprecUac, UacState
from .tones import callee_hz, caller_hz, encoded_frames
from .verify import CallVerdict, Tolerances, judge

__all__ = [
    "PTIME",
    "AnswerError",
    "Answered",
    "AudioFacts",
    "CallResult",
    "CallVerdict",
    "CapacityOptions",
    "CapacityRun",
    "ChannelFacts",
    "Codec",
    "Datagram",
    "Fate",
    "Finished",
    "Impairments",
    "LegImpairer",
    "LegResult",
    "Outcome",
    "Pacer",
    "Progress",
    "Provisional",
    "RtpLeg",
    "SdpAnswer",
    "SiprecUac",
    "StepFigures",
    "StepReport",
    "Tolerances",
    "UacState",
    "WorkerSpec",
    "analyse_file",
    "callee_hz",
    "caller_hz",
    "dominant_frequency",
    "encoded_frames",
    "judge",
    "offer_body",
    "parse_answer",
    "parties",
    "recording_metadata",
    "run_capacity",
    "sdp_offer",
    "write_report",
]
