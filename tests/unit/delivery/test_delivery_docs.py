"""The receiver's signature check is printed twice, in the README's delivery set-up and in docs/delivery.md's CRM
webhook reference: every copy must be the one the webhook tests run."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

from .webhook_receiver import verify

ROOT = Path(__file__).resolve().parents[3]
_PYTHON = re.compile(r"```python\n(.*?)```", re.DOTALL)


def test_every_printed_copy_of_the_signature_check_is_the_tested_one() -> None:
    tested = inspect.getsource(verify)
    documents = (ROOT / "README.md", ROOT / "docs" / "delivery.md")
    printed = [
        block for doc in documents for block in _PYTHON.findall(doc.read_text()) if "def verify(" in block
    ]
    assert len(printed) == 2
    for block in printed:
        assert block.startswith("import hashlib\nimport hmac\nimport time\n")
        assert block.endswith(tested)
