"""Fixtures of the media tests that send real datagrams over loopback."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator

import pytest


@pytest.fixture
async def sender() -> AsyncIterator[socket.socket]:
    """A UDP socket on 127.0.0.1 playing the recording client's media sender."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    yield sock
    sock.close()
