"""RFC 3261 timer values (§17, Table 4) and the ones derived from T1, T2 and T4."""

from __future__ import annotations

from dataclasses import dataclass

from .errors import SipProtocolError


@dataclass(frozen=True, slots=True, kw_only=True)
class TimerConfig:
    t1: float = 0.5  # RTT estimate
    t2: float = 4.0  # longest retransmit interval for non-INVITE requests and INVITE responses
    t4: float = 5.0  # longest time a message stays in the network

    def __post_init__(self) -> None:
        if not 0 < self.t1 <= self.t2 or self.t4 <= 0:
            raise SipProtocolError("timers need 0 < T1 <= T2 and T4 > 0")

    @property
    def transaction_timeout(self) -> float:
        """64*T1: Timers B, F, H, J and RFC 6026 Timer L."""
        return 64 * self.t1

    @property
    def timer_h(self) -> float:
        return self.transaction_timeout

    @property
    def timer_f(self) -> float:
        return self.transaction_timeout

    @property
    def timer_l(self) -> float:
        return self.transaction_timeout

    def timer_i(self, reliable: bool) -> float:
        return 0.0 if reliable else self.t4

    def timer_j(self, reliable: bool) -> float:
        return 0.0 if reliable else self.transaction_timeout

    def timer_k(self, reliable: bool) -> float:
        return 0.0 if reliable else self.t4


DEFAULT_TIMERS = TimerConfig()
