"""The worker's bearer check never raises, whatever bytes a client sends (issue 19)."""

from __future__ import annotations

from pydantic import SecretStr

from streams.app import auth_status

TOKEN = SecretStr("s3cret")


def test_the_right_token_passes_and_others_are_refused() -> None:
    assert auth_status("Bearer s3cret", TOKEN) == 200
    assert auth_status("Bearer wrong", TOKEN) == 401
    assert auth_status("", TOKEN) == 401
    assert auth_status("Bearer s3cret", None) == 401  # no token configured: closed


def test_non_utf8_and_malformed_headers_are_400_not_a_traceback() -> None:
    # aiohttp hands undecodable header bytes over as surrogate escapes
    not_utf8 = b"Bearer \xff\xfe".decode("utf-8", "surrogateescape")
    assert auth_status(not_utf8, TOKEN) == 400
    assert auth_status("Bearer \x00s3cret", TOKEN) == 400
    assert auth_status("Bearer s3cret\x7f", TOKEN) == 400
    assert auth_status("Bearer 密钥", TOKEN) == 401  # valid UTF-8, just not the token
