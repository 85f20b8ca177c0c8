from __future__ import annotations

import pytest

from media.ports import PortPool, PortsExhausted


def test_allocates_even_ports_with_room_for_rtcp() -> None:
    pool = PortPool(30001, 30010)  # odd first port: rounds up to 30002
    ports = [pool.allocate() for _ in range(4)]
    assert ports == [30002, 30004, 30006, 30008]
    assert all(port % 2 == 0 and port + 1 <= 30010 for port in ports)
    assert (pool.free, pool.in_use) == (0, 4)


def test_exhaustion_raises_and_release_makes_room() -> None:
    pool = PortPool(40000, 40003)
    first, second = pool.allocate(), pool.allocate()
    with pytest.raises(PortsExhausted):
        pool.allocate()
    pool.release(first)
    assert pool.free == 1
    assert pool.allocate() == first
    assert second == 40002


def test_released_ports_are_reused_last() -> None:
    pool = PortPool(20000, 20009)
    a = pool.allocate()
    pool.release(a)
    assert [pool.allocate() for _ in range(5)] == [20002, 20004, 20006, 20008, 20000]


def test_release_of_a_port_not_allocated_is_an_error() -> None:
    pool = PortPool(20000, 20009)
    with pytest.raises(ValueError, match="20002"):
        pool.release(20002)
    port = pool.allocate()
    pool.release(port)
    with pytest.raises(ValueError):
        pool.release(port)


@pytest.mark.parametrize(
    ("first", "last"), [(20001, 20002), (20000, 20000), (0, 100), (65534, 65536), (500, 100)]
)
def test_ranges_without_a_pair_are_rejected(first: int, last: int) -> None:
    with pytest.raises(ValueError, match="pair"):
        PortPool(first, last)
