"""The records of a capacity run: what was asked (:class:`CapacityOptions`), what each step showed
(:class:`StepReport`) and the run as a whole (:class:`CapacityRun`), with their JSON form for the report."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .figures import StepFigures
from .profile import Codec, Impairments
from .results import CallResult
from .verify import CallVerdict

__all__ = ["CapacityOptions", "CapacityRun", "StepReport"]


@dataclass(frozen=True, slots=True, kw_only=True)
class CapacityOptions:
    steps: tuple[int, ...]
    hold: float
    rate: float = 50.0
    codec: Codec = Codec.PCMU
    caller: Impairments = field(default_factory=Impairments)
    callee: Impairments = field(default_factory=Impairments)
    processes: int | None = None  # generator processes; default one per generator CPU
    pin: bool = True
    server_args: tuple[str, ...] = ()
    target: tuple[str, int] | None = None  # drive a running server instead of starting one
    http: tuple[str, int] | None = None  # the running server's HTTP (for /metrics)
    dsn: str | None = None  # the running server's catalogue (for verification)
    server_pid: int | None = None  # the running server's process (for CPU and memory)
    seed: int = 1
    answer_timeout: float = 32.0
    keep_data: bool = False
    key_file: str | None = None  # with --target: the server's key file, to read its encrypted recordings
    command: str = ""

    def __post_init__(self) -> None:
        if not self.steps or any(calls < 1 for calls in self.steps):
            raise ValueError("every step needs at least one call")

    def to_json(self) -> dict[str, Any]:
        return {
            "steps": list(self.steps),
            "hold": self.hold,
            "rate": self.rate,
            "codec": self.codec.value,
            "caller": self.caller.to_json(),
            "callee": self.callee.to_json(),
            "processes": self.processes,
            "pin": self.pin,
            "server_args": list(self.server_args),
            "target": None if self.target is None else f"{self.target[0]}:{self.target[1]}",
            "seed": self.seed,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class StepReport:
    number: int
    started_at: str  # ISO 8601 UTC
    window: tuple[float, float]  # seconds since the run started: first INVITE to last call ended
    figures: StepFigures
    verdicts: tuple[CallVerdict, ...] | None
    calls: tuple[CallResult, ...]

    @property
    def failures(self) -> list[CallVerdict]:
        return [v for v in self.verdicts or () if not v.verified]

    @staticmethod
    def _summary(call: CallResult, verdict: CallVerdict | None) -> dict[str, Any]:
        """One call in a line: what was sent and, when verified, what was recorded."""
        return {
            "index": call.index,
            "call_id": call.call_id,
            "outcome": call.outcome,
            "setup_ms": call.setup_ms,
            "sent": [leg.sent for leg in call.legs],
            "media_span": call.media_span,
            "verified": None if verdict is None else verdict.verified,
            "reference": None if verdict is None else verdict.reference,
            "received": None if verdict is None else verdict.received,
            "lost": None if verdict is None else verdict.lost,
            "duration": None if verdict is None else verdict.duration,
        }

    def _failure(self, verdict: CallVerdict) -> dict[str, Any]:
        legs = next((call.legs for call in self.calls if call.index == verdict.index), ())
        return {
            **verdict.to_json(),
            "legs": [
                {
                    "label": leg.label,
                    "source": leg.source,
                    "destination": leg.destination,
                    "ssrcs": list(leg.ssrcs),
                }
                for leg in legs
            ],
        }

    @property
    def passed(self) -> bool:
        f = self.figures
        if self.verdicts is not None:
            return f.verified == f.calls
        return f.answered == f.calls and not f.failed

    def to_json(self) -> dict[str, Any]:
        by_index = {verdict.index: verdict for verdict in self.verdicts or ()}
        return {
            "number": self.number,
            "started_at": self.started_at,
            "window": list(self.window),
            "passed": self.passed,
            **self.figures.to_json(),
            "failures": [self._failure(v) for v in self.failures],
            "per_call": [self._summary(call, by_index.get(call.index)) for call in self.calls],
            "unanswered": [
                {"call_id": c.call_id, "outcome": c.outcome, "status": c.status, "reason": c.reason}
                for c in self.calls
                if not c.answered
            ],
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class CapacityRun:
    options: CapacityOptions
    machine: dict[str, Any]
    server: dict[str, Any]
    steps: tuple[StepReport, ...]
    timeline: dict[str, list[dict[str, Any]]]
    started_at: str
    duration: float

    @property
    def passed(self) -> bool:
        return bool(self.steps) and all(step.passed for step in self.steps)

    def to_json(self) -> dict[str, Any]:
        return {
            "command": self.options.command,
            "passed": self.passed,
            "started_at": self.started_at,
            "duration_seconds": round(self.duration, 1),
            "machine": self.machine,
            "server": self.server,
            "options": self.options.to_json(),
            "steps": [step.to_json() for step in self.steps],
            "timeline": self.timeline,
        }
