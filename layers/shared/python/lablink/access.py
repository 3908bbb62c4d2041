"""The access gate of request_vm (API.md, "Researcher identity and access"): an optional
workshop code and allow-lists of emails and email domains, set by the admin at run time
(PUT /api/access); until then the configuration's ``access`` section applies.

- The code is a room code shared by every participant, not a secret of the deployment: it
  is stored only as a salted PBKDF2 hash and compared in constant time, exactly as typed
  (case matters; spaces around it are ignored).
- The lists: when both are empty everyone passes; otherwise an email passes when it is on
  ``allowed_emails`` or its domain is on ``allowed_domains`` or is a subdomain of one (a
  domain's owner controls its subdomains: ``uni.edu`` admits ``cs.uni.edu``).
- The code is checked before the lists, so a wrong code tells nothing about the lists.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass, replace
from functools import cache

from lablink.api.http import ApiError
from lablink.config import AccessConfig
from lablink.db.access import AccessRow
from lablink.db.database import Database
from lablink.observability import count

# PBKDF2-SHA256 (hashlib, the standard library): 50,000 iterations, about 30 ms per check
# measured on a busy 2-core machine; only paid while a code is set.
# The code is short and shared with a room, so no hash makes it strong; this keeps it out
# of a database dump or snapshot in readable form.
_HASH_NAME = "pbkdf2_sha256"
_ITERATIONS = 50_000


def hash_code(code: str) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.pbkdf2_hmac("sha256", code.strip().encode(), salt, _ITERATIONS)
    return "$".join((_HASH_NAME, str(_ITERATIONS), base64.b64encode(salt).decode(), base64.b64encode(digest).decode()))


def code_matches(code: str | None, stored_hash: str) -> bool:
    """Constant-time check of a typed code against a stored hash."""
    if not code:
        return False
    name, iterations, salt, digest = stored_hash.split("$")
    typed = hashlib.pbkdf2_hmac("sha256", code.strip().encode(), base64.b64decode(salt), int(iterations))
    return name == _HASH_NAME and hmac.compare_digest(typed, base64.b64decode(digest))


@cache
def _default_code_hash(code: str) -> str:
    """The configured code's hash, made once per process (its salt is this process's own)."""
    return hash_code(code)


@dataclass(frozen=True)
class AccessRules:
    code_hash: str | None
    allowed_emails: tuple[str, ...]
    allowed_domains: tuple[str, ...]

    @property
    def code_required(self) -> bool:
        return self.code_hash is not None

    def admits(self, email: str) -> bool:
        """``email`` is lower case (request_vm normalizes it)."""
        if not self.allowed_emails and not self.allowed_domains:
            return True
        domain = email.rpartition("@")[2]
        return email in self.allowed_emails or any(
            domain == d or domain.endswith("." + d) for d in self.allowed_domains
        )

    def as_row(self) -> AccessRow:
        return AccessRow(
            code_hash=self.code_hash,
            allowed_emails=list(self.allowed_emails),
            allowed_domains=list(self.allowed_domains),
        )


def current_rules(db: Database, defaults: AccessConfig) -> AccessRules:
    """What the admin set at run time, else the configuration's defaults."""
    row = db.access.get()
    if row is None:
        return AccessRules(
            _default_code_hash(defaults.code) if defaults.code else None,
            tuple(defaults.allowed_emails),
            tuple(defaults.allowed_domains),
        )
    return AccessRules(row["code_hash"], tuple(row["allowed_emails"]), tuple(row["allowed_domains"]))


class AccessDenied(ApiError):
    def __init__(self, message: str) -> None:
        super().__init__(403, message)


def check_access(db: Database, defaults: AccessConfig, email: str, access_code: str | None) -> None:
    """Raise AccessDenied (403) unless ``email`` with ``access_code`` may claim a VM."""
    rules = current_rules(db, defaults)
    if rules.code_hash is not None and not code_matches(access_code, rules.code_hash):
        count("AccessRefused")
        raise AccessDenied(
            "This workshop's access code is wrong."
            if access_code
            else "This workshop needs its access code: ask your organizer."
        )
    if not rules.admits(email):
        count("AccessRefused")
        raise AccessDenied(
            "This email is not on the workshop's list: use the address you registered with, or ask your organizer."
        )


# A PUT without "code" keeps the current code; "code": null removes it.
KEEP_CODE = object()


def update_rules(
    db: Database,
    defaults: AccessConfig,
    *,
    code: str | None | object = KEEP_CODE,
    allowed_emails: list[str] | None = None,
    allowed_domains: list[str] | None = None,
) -> AccessRules:
    """Store the rules with the given parts changed (None: that list is kept) and return
    them. The lists arrive validated and in lower case."""
    rules = current_rules(db, defaults)
    if code is not KEEP_CODE:
        rules = replace(rules, code_hash=hash_code(code) if isinstance(code, str) else None)
    if allowed_emails is not None:
        rules = replace(rules, allowed_emails=tuple(dict.fromkeys(allowed_emails)))
    if allowed_domains is not None:
        rules = replace(rules, allowed_domains=tuple(dict.fromkeys(allowed_domains)))
    db.access.set(rules.as_row())
    return rules
