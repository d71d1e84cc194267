"""`dfip deadletters` decodes whatever is on dfip.deadletter, dead letter or not."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from dfip.peek import _dead_letter


@pytest.mark.parametrize("value", [b"[1, 2]", b"null", b'"text"', b"\x00\xff", None, b"{" * 5000])
def test_a_record_that_is_no_dead_letter_is_shown_as_unreadable(value: bytes | None) -> None:
    # a JSON array was an AttributeError traceback ending the whole command
    entry = _dead_letter(SimpleNamespace(value=value, partition=0, offset=7))
    assert entry["error_class"] == "unreadable"
    assert entry["_at"] == "p0@7"
    assert len(entry["reason"]) <= 401


def test_a_dead_letter_keeps_its_fields() -> None:
    record = SimpleNamespace(value=b'{"stage": "adapter", "reason": "r"}', partition=1, offset=2)
    assert _dead_letter(record) == {"stage": "adapter", "reason": "r", "_at": "p1@2"}
