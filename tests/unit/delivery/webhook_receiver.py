"""The receiver-side check of a Hangtár webhook's signature, exactly as docs/delivery.md ("CRM webhook") prints it:
the tests verify every request with this function and check that the documentation carries its source."""

import hashlib
import hmac
import time


def verify(secret: str, header: str, body: bytes, tolerance: int = 300, now: float | None = None) -> bool:
    """True if the Hangtar-Signature `header` signs the raw request `body` with `secret`, and its
    timestamp is within `tolerance` seconds of now (an old request replayed is refused)."""
    try:
        fields = [item.strip().split("=", 1) for item in header.split(",")]
        timestamp = int(next(value for name, value in fields if name == "t"))
        signatures = [value for name, value in fields if name == "v1"]
    except (ValueError, StopIteration):
        return False
    if abs((time.time() if now is None else now) - timestamp) > tolerance:
        return False
    signed = str(timestamp).encode() + b"." + body
    expected = hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()
    return any(hmac.compare_digest(expected, signature) for signature in signatures)
