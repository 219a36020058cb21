"""Bearer-token authentication: API keys from an environment variable or a file, checked by digest.

Keys are written as entries ``name:secret`` (or a bare ``secret``, named ``key-<first 8 hex of its
sha256>``), separated by newlines or commas; ``#`` starts a comment. Only the sha256 digests of the secrets
are kept; a presented token is hashed and looked up by its digest (timing reveals nothing about a secret).
The key's *name* is what budgets, metrics and logs use: a secret is never logged, echoed or shown in a
``repr``.

Without configured keys the server only starts on a loopback address (see `adaptive_router.server.config`),
and every request runs as the key named ``anonymous``.

Examples
--------
>>> ring = KeyRing(parse_keys("alice:sk-alice-0123456789, sk-bare-0123456789", source="ADAPTIVE_KEYS"))
>>> ring.authenticate("Bearer sk-alice-0123456789")
'alice'
>>> ring.names()
['alice', 'key-4eedbafe']
>>> ring.authenticate("Bearer wrong")
Traceback (most recent call last):
...
adaptive_router.server.errors.APIError: invalid API key: check the key you send as Authorization: Bearer <key>
>>> ring
KeyRing(names=['alice', 'key-4eedbafe'])
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Mapping
from pathlib import Path

from adaptive_router.errors import ConfigError
from adaptive_router.server.config import AuthSection
from adaptive_router.server.errors import APIError

__all__ = ["ANONYMOUS", "MIN_SECRET_LENGTH", "KeyRing", "parse_keys"]

ANONYMOUS = "anonymous"
"""The key name of every request when no keys are configured (loopback only)."""
MIN_SECRET_LENGTH = 16
_NAME = re.compile(r"^[A-Za-z0-9_.@-]{1,64}$")


def _digest(secret: str) -> bytes:
    return hashlib.sha256(secret.encode("utf-8")).digest()


def parse_keys(text: str, *, source: str) -> dict[str, str]:
    """``{name: secret}`` from ``name:secret`` / ``secret`` entries (newline- or comma-separated).

    Raises
    ------
    ConfigError
        No entry, a secret shorter than `MIN_SECRET_LENGTH`, a malformed name or a duplicate; the message
        names the `source` and the entry number, never the secret.
    """
    keys: dict[str, str] = {}
    entries = [e.strip() for line in text.splitlines() for e in line.split("#", 1)[0].split(",")]
    for number, entry in enumerate((e for e in entries if e), start=1):
        name, sep, secret = entry.partition(":")
        if not sep:
            secret = name
            name = "key-" + hashlib.sha256(secret.encode()).hexdigest()[:8]
        name, secret = name.strip(), secret.strip()
        if not _NAME.match(name):
            raise ConfigError(f"{source}: key entry {number}: the name must be 1-64 of A-Z a-z 0-9 _ . @ -")
        if len(secret) < MIN_SECRET_LENGTH or any(c.isspace() for c in secret):
            raise ConfigError(
                f"{source}: key entry {number} ({name!r}): a secret needs at least {MIN_SECRET_LENGTH} "
                "characters and no spaces; generate one with: python -c 'import secrets; "
                "print(secrets.token_urlsafe(32))'"
            )
        if name in keys:
            raise ConfigError(f"{source}: key name {name!r} appears twice; give every key its own name")
        keys[name] = secret
    if not keys:
        raise ConfigError(f"{source}: no API key found; write one name:secret entry per line")
    return keys


class KeyRing:
    """The accepted API keys, by name (only digests are kept).

    Parameters
    ----------
    keys : mapping of str to str, optional
        ``{name: secret}``; ``None`` or empty: authentication is off (every request is `ANONYMOUS`).
    """

    def __init__(self, keys: Mapping[str, str] | None = None) -> None:
        self._by_digest = {_digest(secret): name for name, secret in (keys or {}).items()}
        self._names = sorted(self._by_digest.values())

    @classmethod
    def from_config(cls, auth: AuthSection, environ: Mapping[str, str] | None = None) -> KeyRing:
        """The keys `auth` points at (an environment variable or a file); none configured: auth off.

        Raises
        ------
        ConfigError
            The variable is unset or empty, the file cannot be read, or an entry is malformed.
        """
        env = os.environ if environ is None else environ
        if auth.keys_env:
            text = env.get(auth.keys_env, "")
            if not text.strip():
                raise ConfigError(
                    f"auth.keys_env = {auth.keys_env!r} but that environment variable is unset or empty; "
                    f"export {auth.keys_env}='name:secret,...'"
                )
            return cls(parse_keys(text, source=f"${auth.keys_env}"))
        if auth.keys_file:
            path = Path(auth.keys_file)
            try:
                text = path.read_text(encoding="utf-8")
            except OSError as exc:
                raise ConfigError(f"auth.keys_file = {str(path)!r} cannot be read: {exc.strerror}") from None
            return cls(parse_keys(text, source=str(path)))
        return cls()

    @property
    def enabled(self) -> bool:
        """Whether requests must present a key."""
        return bool(self._by_digest)

    def names(self) -> list[str]:
        """The key names, sorted."""
        return list(self._names)

    def authenticate(self, authorization: str | None) -> str:
        """The name of the key in an ``Authorization: Bearer <key>`` header value.

        Raises
        ------
        APIError
            401 for a missing, malformed or unknown key.
        """
        if not self._by_digest:
            return ANONYMOUS
        if not authorization:
            raise APIError(
                401,
                "missing API key: send it as the header Authorization: Bearer <key>",
                code="missing_api_key",
            )
        scheme, _, token = authorization.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise APIError(
                401, "malformed Authorization header: use Authorization: Bearer <key>", code="invalid_api_key"
            )
        name = self._by_digest.get(_digest(token))  # compares sha256 digests, never the secrets themselves
        if name is None:
            raise APIError(
                401,
                "invalid API key: check the key you send as Authorization: Bearer <key>",
                code="invalid_api_key",
            )
        return name

    def __repr__(self) -> str:
        return f"KeyRing(names={self._names})"
