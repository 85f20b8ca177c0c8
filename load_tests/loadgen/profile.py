"""What a load run asks for: codec, impairments per leg, and the plan one generator process receives.

Value objects only; each one validates itself and round-trips through JSON, which is how the capacity runner
hands a plan to a generator process and gets its results back.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = ["PTIME", "Codec", "Impairments", "WorkerSpec"]

PTIME = 0.020  # seconds of audio per RTP packet


class Codec(enum.StrEnum):
    """Codecs the generator can send, by their RTP encoding name (RFC 3551 §6)."""

    PCMU = "PCMU"
    PCMA = "PCMA"
    G722 = "G722"

    @property
    def payload_type(self) -> int:
        return _PAYLOAD_TYPES[self]

    @property
    def sample_rate(self) -> int:
        """Audio samples per second fed to the encoder."""
        return 16000 if self is Codec.G722 else 8000

    @property
    def clock_rate(self) -> int:
        # RFC 3551 §4.5.2: G.722's RTP clock is 8000 Hz although it samples at 16 kHz.
        return 8000

    @property
    def encoder(self) -> str:
        """The FFmpeg encoder (through PyAV) that makes the payloads."""
        return _ENCODERS[self]


_PAYLOAD_TYPES = {Codec.PCMU: 0, Codec.PCMA: 8, Codec.G722: 9}
_ENCODERS = {Codec.PCMU: "pcm_mulaw", Codec.PCMA: "pcm_alaw", Codec.G722: "g722"}


@dataclass(frozen=True, slots=True, kw_only=True)
class Impairments:
    """What the network does to one leg. Percentages are per packet except ``ssrc_change`` (per leg)."""

    loss: float = 0.0  # % of packets dropped (never the first two or the last)
    jitter_ms: float = 0.0  # each packet delayed by uniform [0, jitter] ms; above the ptime this reorders
    reorder: float = 0.0  # % of packets sent after their successor
    duplicate: float = 0.0  # % of packets sent twice
    ssrc_change: float = 0.0  # % of legs that switch to a new SSRC, sequence and timestamp base mid-call
    delay_ms: float = 0.0  # constant extra one-way delay

    def __post_init__(self) -> None:
        for name in ("loss", "reorder", "duplicate", "ssrc_change"):
            value = getattr(self, name)
            if not 0.0 <= value <= 100.0:
                raise ValueError(f"{name} must be a percentage between 0 and 100, not {value}")
        for name in ("jitter_ms", "delay_ms"):
            value = getattr(self, name)
            if not 0.0 <= value <= 5000.0:
                raise ValueError(f"{name} must be between 0 and 5000 ms, not {value}")

    @property
    def active(self) -> bool:
        """Whether any packet of the leg is dropped, delayed, repeated or reordered."""
        return any((self.loss, self.jitter_ms, self.reorder, self.duplicate, self.delay_ms))

    def to_json(self) -> dict[str, float]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Impairments:
        return cls(**{key: float(value) for key, value in data.items()})


@dataclass(frozen=True, slots=True, kw_only=True)
class WorkerSpec:
    """Everything one generator process needs: which calls to place, where, how fast and how impaired.

    Call ``k`` of ``call_indices`` is started ``offset + i / rate`` seconds after the common start signal,
    ``i`` being its position here; ``k`` picks its tones and names it in the Call-ID.
    """

    target_host: str
    target_port: int
    local_host: str
    call_indices: tuple[int, ...]
    rate: float  # calls started per second by this process
    offset: float = 0.0  # seconds after the start signal of this process's first call
    hold: float  # seconds of RTP per call
    codec: Codec = Codec.PCMU
    caller: Impairments = field(default_factory=Impairments)
    callee: Impairments = field(default_factory=Impairments)
    seed: int = 1
    run_id: str  # makes Call-IDs unique across runs and steps
    answer_timeout: float = 32.0  # RFC 3261 Timer B (64·T1)
    progress_interval: float = 0.5

    def __post_init__(self) -> None:
        object.__setattr__(self, "codec", Codec(self.codec))
        object.__setattr__(self, "call_indices", tuple(self.call_indices))
        if not 0 < self.target_port < 65536:
            raise ValueError(f"target port {self.target_port} out of range")
        if self.rate <= 0 or self.hold < 2 * PTIME or self.answer_timeout <= 0:
            raise ValueError("rate, hold and answer_timeout must be positive (hold at least two packets)")
        if len(set(self.call_indices)) != len(self.call_indices):
            raise ValueError("call indices must be distinct")

    def call_id(self, index: int) -> str:
        return f"{self.run_id}-{index}@loadgen.hangtar.invalid"

    def to_json(self) -> dict[str, Any]:
        data = {name: getattr(self, name) for name in self.__slots__}
        data["codec"] = self.codec.value
        data["call_indices"] = list(self.call_indices)
        data["caller"] = self.caller.to_json()
        data["callee"] = self.callee.to_json()
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> WorkerSpec:
        values = dict(data)
        values["codec"] = Codec(values["codec"])
        values["call_indices"] = tuple(int(k) for k in values["call_indices"])
        values["caller"] = Impairments.from_json(values["caller"])
        values["callee"] = Impairments.from_json(values["callee"])
        return cls(**values)
