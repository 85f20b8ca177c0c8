"""Many UDP datagrams from one socket in one system call: Linux ``sendmmsg(2)`` through ctypes.

The datagrams are the rows of one C-contiguous ``uint8`` array, their destinations the rows of another
(``struct sockaddr_in``, 16 octets); the message headers and I/O vectors are numpy arrays with the kernel's
x86-64/aarch64 layout, filled by array arithmetic, so no Python code runs per datagram.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import socket
import struct

import numpy as np
import numpy.typing as npt

__all__ = ["MAX_BATCH", "BatchSender", "sockaddr_in"]

MAX_BATCH = 1024  # UIO_MAXIOV: the most messages one call takes

_MMSGHDR = np.dtype(
    {
        "names": ["name", "namelen", "iov", "iovlen", "control", "controllen", "flags", "len"],
        "formats": ["u8", "u4", "u8", "u8", "u8", "u8", "i4", "u4"],
        "offsets": [0, 8, 16, 24, 32, 40, 48, 56],
        "itemsize": 64,
    }
)
_IOVEC = np.dtype({"names": ["base", "len"], "formats": ["u8", "u8"], "offsets": [0, 8], "itemsize": 16})
_SOCKADDR_IN = 16


def sockaddr_in(host: str, port: int) -> bytes:
    """``struct sockaddr_in`` for an IPv4 address: family (host order), port and address (network order)."""
    return struct.pack("=H", socket.AF_INET) + struct.pack("!H", port) + socket.inet_aton(host) + bytes(8)


class BatchSender:
    def __init__(self) -> None:
        libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
        self._sendmmsg = libc.sendmmsg
        self._sendmmsg.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_uint, ctypes.c_int]
        self._sendmmsg.restype = ctypes.c_int
        self._messages = np.zeros(MAX_BATCH, dtype=_MMSGHDR)
        self._vectors = np.zeros(MAX_BATCH, dtype=_IOVEC)
        self._steps = np.arange(MAX_BATCH, dtype=np.uint64)

    def send(self, fd: int, datagrams: npt.NDArray[np.uint8], names: npt.NDArray[np.uint8]) -> int:
        """Send each row of ``datagrams`` to the address in the same row of ``names``; how many went out, in
        order (a datagram the socket refused ends the batch: the rest count as not sent). The socket must be
        unconnected: then the kernel reports no ICMP errors on it, so one unreachable destination cannot fail
        the others."""
        count, size = datagrams.shape
        if names.shape != (count, _SOCKADDR_IN) or not (
            datagrams.flags.c_contiguous and names.flags.c_contiguous
        ):
            raise ValueError("datagrams and names must be C-contiguous rows, one name per datagram")
        messages, vectors, steps = self._messages, self._vectors, self._steps
        sent = 0
        while sent < count:
            k = min(count - sent, MAX_BATCH)
            vectors["base"][:k] = datagrams.ctypes.data + (steps[:k] + sent) * size
            vectors["len"][:k] = size
            messages["name"][:k] = names.ctypes.data + (steps[:k] + sent) * _SOCKADDR_IN
            messages["namelen"][:k] = _SOCKADDR_IN
            messages["iov"][:k] = vectors.ctypes.data + steps[:k] * _IOVEC.itemsize
            messages["iovlen"][:k] = 1
            done = self._sendmmsg(fd, messages.ctypes.data, k, 0)
            if done <= 0:
                return sent  # a full socket buffer (EAGAIN) or worse: the caller counts the rest as not sent
            sent += done
        return sent
