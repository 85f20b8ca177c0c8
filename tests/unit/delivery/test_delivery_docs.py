"""docs/delivery.md prints the receiver's signature check twice (the setup section meant for the README, and the
CRM webhook reference): every copy must be the one the webhook tests run."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

from .webhook_receiver import verify

DOCS = Path(__file__).resolve().parents[3] / "docs" / "delivery.md"
_PYTHON = re.compile(r"```python\n(.*?)```", re.DOTALL)


def test_every_printed_copy_of_the_signature_check_is_the_tested_one() -> None:
    tested = inspect.getsource(verify)
    printed = [block for block in _PYTHON.findall(DOCS.read_text()) if "def verify(" in block]
    assert len(printed) == 2
    for block in printed:
        assert block.startswith("import hashlib\nimport hmac\nimport time\n")
        assert block.endswith(tested)
