"""The query audit log: one line per access, the enterprise named by a keyed hash only.

Like the adapters' account references (schemas.ids.pseudonymise_account), the pseudonym is
HMAC-SHA256 under a secret key, so it cannot be reversed by hashing every USCC; the same
enterprise always gets the same pseudonym under the same key, so accesses can be correlated
(and, by whoever holds the key, attributed) without the log holding an identifier.
"""

from __future__ import annotations

import hashlib
import hmac
import logging

__all__ = ["AUDIT_LOGGER", "audit", "pseudonymise_enterprise"]

AUDIT_LOGGER = "dfip.audit"
_log = logging.getLogger(AUDIT_LOGGER)


def pseudonymise_enterprise(uscc: str, key: bytes) -> str:
    """``"ent_" + hmac_sha256(key, uscc)[:32 hex]`` of the id as requested (stripped)."""
    if not key:
        raise ValueError("pseudonymisation key must not be empty")
    digest = hmac.new(key, uscc.strip().upper().encode("utf-8"), hashlib.sha256).hexdigest()
    return "ent_" + digest[:32]


def audit(pseudonym: str, status: int, *, served: str, client: str | None) -> None:
    """Log one access: who asked (the client address), which enterprise (pseudonym), the
    answer's status and how it was served (local, forwarded to the owner, refused)."""
    _log.info(
        "enterprise query %s status=%d served=%s client=%s",
        pseudonym,
        status,
        served,
        client or "-",
    )
