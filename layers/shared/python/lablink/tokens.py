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


# A VM's log stream is "<hostname>.<tag>", the tag an HMAC of the stream name keyed by the
# VM's token hash: the VM computes it from its token, the log processor from the hash in the
# database, and no other VM can (IAM cannot limit an instance to its own stream: see
# lablink/logs.py). 128 bits; hostnames hold no '.', stream names no ':' or '*'.
_STREAM_TAG_HEX = 32


def _stream_tag(hostname: str, token_hash: str) -> str:
    tag = hmac.new(token_hash.encode(), f"lablink-log-stream:{hostname}".encode(), hashlib.sha256)
    return tag.hexdigest()[:_STREAM_TAG_HEX]


def log_stream_name(hostname: str, token: str) -> str:
    """The one log stream the VM holding this token writes to."""
    return f"{hostname}.{_stream_tag(hostname, hash_token(token))}"


def log_stream_hostname(stream: str) -> str:
    """The hostname a stream name claims (the stream itself when it claims none)."""
    return stream.rsplit(".", 1)[0]


def log_stream_matches(stream: str, token_hash: str | None) -> bool:
    """Whether the stream is the one of the VM whose token has this hash (constant time)."""
    if not token_hash or "." not in stream:
        return False
    hostname, tag = stream.rsplit(".", 1)
    return hmac.compare_digest(tag.encode(), _stream_tag(hostname, token_hash).encode())


def token_matches(token: str | None, stored_hash: str | None) -> bool:
    """Constant-time check of a presented token against the stored hash."""
    if not token or not stored_hash:
        return False
    return hmac.compare_digest(hash_token(token), stored_hash)
