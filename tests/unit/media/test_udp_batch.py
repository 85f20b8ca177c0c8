"""Batched reads from real loopback sockets: every datagram, its bytes, its arrival time and its source."""

from __future__ import annotations

import socket
import sys
import time
from collections.abc import Iterator

import pytest

from media import udp_batch
from media.udp_batch import BATCH, MAX_DATAGRAM, BatchReader, address_of, open_udp_socket

HOST = "127.0.0.1"


@pytest.fixture
def receiver() -> Iterator[socket.socket]:
    sock = open_udp_socket(HOST, 0)
    yield sock
    sock.close()


@pytest.fixture
def senders() -> Iterator[tuple[socket.socket, socket.socket]]:
    pair = (
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM),
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM),
    )
    for sock in pair:
        sock.bind((HOST, 0))
    yield pair
    for sock in pair:
        sock.close()


def wait_queued(sock: socket.socket, count: int) -> None:
    """Loopback delivery is synchronous, but give the kernel a moment under load."""
    deadline = time.monotonic() + 2.0
    while time.monotonic() < deadline:
        try:
            sock.recv(MAX_DATAGRAM, socket.MSG_PEEK | socket.MSG_DONTWAIT)
        except BlockingIOError:
            time.sleep(0.001)
        else:
            return
    raise AssertionError(f"{count} datagrams never arrived")


@pytest.fixture(params=["recvmmsg", "recvfrom"])
def reader(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> BatchReader:
    if request.param == "recvfrom":
        monkeypatch.setattr(udp_batch, "_recvmmsg", None)
    elif udp_batch._recvmmsg is None:
        pytest.fail("recvmmsg is expected on this Linux machine")
    return BatchReader()


def test_reads_every_datagram_in_order_with_bytes_and_arrival_time(
    receiver: socket.socket, senders: tuple[socket.socket, socket.socket], reader: BatchReader
) -> None:
    sender = senders[0]
    target = receiver.getsockname()
    sizes = [12, 172, 0, 1500, MAX_DATAGRAM] + [172] * (2 * BATCH + 7)  # more than two batches
    payloads = [bytes([i % 256]) * size for i, size in enumerate(sizes)]
    before = time.time()
    for payload in payloads:
        sender.sendto(payload, target)
    datagrams, source, foreign = reader.read(receiver)
    deadline = time.monotonic() + 2.0
    while len(datagrams) < len(payloads) and time.monotonic() < deadline:  # a busy kernel may deliver late
        more, source, also = reader.read(receiver, source)
        datagrams += more
        foreign += also
    after = time.time()

    assert [data for _, data in datagrams] == payloads
    assert all(before - 0.001 <= arrival <= after + 0.001 for arrival, _ in datagrams)
    assert source is not None and address_of(source) == sender.getsockname()
    assert foreign == 0
    assert reader.read(receiver, source) == ([], source, 0)  # drained


def test_kernel_arrival_time_is_kept_however_late_the_read(
    receiver: socket.socket, senders: tuple[socket.socket, socket.socket]
) -> None:
    senders[0].sendto(b"early", receiver.getsockname())
    sent = time.time()
    time.sleep(0.3)  # the tick that drains comes later: the stamp must still be the arrival
    datagrams, _, _ = BatchReader().read(receiver)
    assert datagrams[0][1] == b"early"
    assert abs(datagrams[0][0] - sent) < 0.05


def test_longer_datagrams_are_truncated_to_the_buffer(
    receiver: socket.socket, senders: tuple[socket.socket, socket.socket], reader: BatchReader
) -> None:
    senders[0].sendto(bytes(range(256)) * 12, receiver.getsockname())  # 3072 octets
    wait_queued(receiver, 1)
    datagrams, _, _ = reader.read(receiver)
    assert [len(data) for _, data in datagrams] == [MAX_DATAGRAM]
    assert datagrams[0][1] == (bytes(range(256)) * 12)[:MAX_DATAGRAM]


def test_first_source_is_latched_and_others_counted_as_foreign(
    receiver: socket.socket, senders: tuple[socket.socket, socket.socket], reader: BatchReader
) -> None:
    first, other = senders
    target = receiver.getsockname()
    for i in range(10):
        (other if i in (3, 7) else first).sendto(bytes([i]), target)
    wait_queued(receiver, 10)
    datagrams, source, foreign = reader.read(receiver)
    assert len(datagrams) == 10
    assert source is not None and address_of(source) == first.getsockname()
    assert foreign == 2
    # A later read keeps the latch: only the other sender is foreign.
    other.sendto(b"x", target)
    first.sendto(b"y", target)
    wait_queued(receiver, 2)
    datagrams, again, foreign = reader.read(receiver, source)
    assert (again, foreign, [d for _, d in datagrams]) == (source, 1, [b"x", b"y"])


def test_ipv6_sources_are_told_apart_by_address(reader: BatchReader) -> None:
    sock = open_udp_socket("::1", 0)  # this machine has IPv6 loopback
    with sock, socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as sender:
        sender.bind(("::1", 0))
        sender.sendto(b"v6", sock.getsockname()[:2])
        wait_queued(sock, 1)
        datagrams, source, _ = reader.read(sock)
        port = sender.getsockname()[1]
    assert [d for _, d in datagrams] == [b"v6"]
    assert source is not None and address_of(source) == ("::1", port)


def test_an_address_in_use_raises_and_leaves_nothing_open(receiver: socket.socket) -> None:
    with pytest.raises(OSError):
        open_udp_socket(HOST, receiver.getsockname()[1])


@pytest.mark.parametrize("port", [124, 31800, 32892, 52092, 65535])
def test_raw_addresses_decode_whatever_octets_the_port_holds(port: int) -> None:
    """A port such as 0x7C7C holds the octet of "|"; the raw form must still decode as an address."""
    raw = socket.AF_INET.to_bytes(2, sys.byteorder) + port.to_bytes(2, "big") + socket.inet_aton("127.0.0.1")
    assert address_of(raw) == ("127.0.0.1", port)
    raw6 = socket.AF_INET6.to_bytes(2, sys.byteorder) + port.to_bytes(2, "big") + bytes(4)
    raw6 += socket.inet_pton(socket.AF_INET6, "2001:db8::7c7c")
    assert address_of(raw6) == ("2001:db8::7c7c", port)
