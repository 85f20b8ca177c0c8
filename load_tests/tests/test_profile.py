"""Plans handed to generator processes: validation, the JSON round trip, and how calls are dealt out."""

from __future__ import annotations

import json

import pytest

from load_tests.loadgen import Codec, Impairments, WorkerSpec
from load_tests.loadgen.workers import split_calls


def _spec(**changes: object) -> WorkerSpec:
    values: dict[str, object] = {
        "target_host": "127.0.0.1",
        "target_port": 5060,
        "local_host": "127.0.0.1",
        "call_indices": (0, 2, 4),
        "rate": 25.0,
        "offset": 0.02,
        "hold": 60.0,
        "codec": Codec.G722,
        "caller": Impairments(loss=1.0, jitter_ms=30.0),
        "callee": Impairments(duplicate=1.0, ssrc_change=50.0, delay_ms=200.0),
        "run_id": "cap6b0b4d65-s1",
    }
    values.update(changes)
    return WorkerSpec(**values)  # type: ignore[arg-type]


def test_a_plan_survives_json() -> None:
    spec = _spec()
    assert WorkerSpec.from_json(json.loads(json.dumps(spec.to_json()))) == spec
    assert spec.call_id(4) == "cap6b0b4d65-s1-4@loadgen.hangtar.invalid"


@pytest.mark.parametrize(
    "changes",
    [{"target_port": 0}, {"rate": 0.0}, {"hold": 0.02}, {"call_indices": (1, 1)}, {"codec": "GSM"}],
)
def test_unusable_plans_are_refused(changes: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        _spec(**changes)


@pytest.mark.parametrize(
    "changes", [{"loss": -1.0}, {"duplicate": 101.0}, {"jitter_ms": 6000.0}, {"delay_ms": -5.0}]
)
def test_impossible_impairments_are_refused(changes: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        Impairments(**changes)


def test_impairments_are_active_only_when_a_packet_is_touched() -> None:
    assert not Impairments().active
    assert not Impairments(ssrc_change=100.0).active  # a new source is not an impairment of packets
    assert Impairments(delay_ms=200.0).active


def test_calls_are_dealt_so_that_together_they_start_at_the_rate() -> None:
    shares = split_calls(list(range(10, 17)), processes=3, rate=50.0)
    assert shares == [((10, 13, 16), 50 / 3, 0.0), ((11, 14), 50 / 3, 0.02), ((12, 15), 50 / 3, 0.04)]
    starts = sorted(offset + i / rate for indices, rate, offset in shares for i in range(len(indices)))
    assert starts == pytest.approx([k / 50 for k in range(7)])
    assert split_calls([1, 2], processes=8, rate=10.0) == [((1,), 5.0, 0.0), ((2,), 5.0, 0.1)]
