"""Delivery of recordings to a tenant's own server or CRM, exactly once, with erasure notices (GDPR Art. 19).

The outbox, targets and rules live in ``storage.delivery_*``; this package moves the bytes: the transport
interface (:mod:`.transport`), payloads (:mod:`.payload`), the SFTP and FTPS transports (:mod:`.sftp`,
:mod:`.ftps`), the worker (:mod:`.worker`) and its metrics (:mod:`.metrics`). See docs/delivery.md.
"""

from .ftps import FtpsTransport
from .metrics import DeliveryMetrics
from .names import render_name
from .payload import PayloadError, PayloadSource
from .sftp import SftpTransport
from .transport import (
    ClosableTransport,
    DeliveryFailure,
    NameFields,
    Notice,
    Payload,
    Receipt,
    Transport,
    TransportError,
)
from .worker import DeliveryWorker, PassReport

__all__ = [
    "ClosableTransport",
    "DeliveryFailure",
    "DeliveryMetrics",
    "DeliveryWorker",
    "FtpsTransport",
    "NameFields",
    "Notice",
    "PassReport",
    "Payload",
    "PayloadError",
    "PayloadSource",
    "Receipt",
    "SftpTransport",
    "Transport",
    "TransportError",
    "render_name",
]
