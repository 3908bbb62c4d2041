"""Per-VM bearer tokens: minted at launch, handed to the VM in its user data, stored only as
a SHA-256 hash (the token has 256 bits of entropy, so a fast hash is enough)."""

from __future__ import annotations

import hashlib
import hmac
import secrets


def mint_token() -> str:
    return secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def token_matches(token: str | None, stored_hash: str | None) -> bool:
    """Constant-time check of a presented token against the stored hash."""
    if not token or not stored_hash:
        return False
    return hmac.compare_digest(hash_token(token), stored_hash)
