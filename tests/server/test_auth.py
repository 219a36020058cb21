"""Tests for adaptive_router.server.auth: key parsing and bearer checks that never reveal a secret."""

from __future__ import annotations

import pytest

from adaptive_router.errors import ConfigError
from adaptive_router.server.auth import ANONYMOUS, KeyRing, parse_keys
from adaptive_router.server.config import AuthSection
from adaptive_router.server.errors import APIError

SECRET = "sk-very-secret-0123456789"


def test_keys_from_an_env_var_and_a_file(tmp_path):
    ring = KeyRing.from_config(AuthSection(keys_env="K"), {"K": f"ops:{SECRET}\n# comment\n"})
    assert ring.enabled and ring.authenticate(f"Bearer {SECRET}") == "ops"
    path = tmp_path / "keys.txt"
    path.write_text(f"# one per line\nci:{SECRET}x\n")
    assert KeyRing.from_config(AuthSection(keys_file=path)).authenticate(f"bearer {SECRET}x") == "ci"
    assert not KeyRing.from_config(AuthSection()).enabled
    assert KeyRing().authenticate(None) == ANONYMOUS


@pytest.mark.parametrize(
    ("header", "code"),
    [(None, "missing_api_key"), ("Basic abc", "invalid_api_key"), ("Bearer ", "invalid_api_key"),
     (f"Bearer {SECRET}-", "invalid_api_key")],
)  # fmt: skip
def test_a_bad_header_is_401(header, code):
    ring = KeyRing({"ops": SECRET})
    with pytest.raises(APIError) as info:
        ring.authenticate(header)
    assert info.value.status == 401 and info.value.code == code
    assert SECRET not in str(info.value)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "no API key found"),
        ("ops:short", r"key entry 1 \('ops'\): a secret needs at least 16 characters"),
        (f"bad name:{SECRET}", "key entry 1: the name must be"),
        (f"a:{SECRET},a:{SECRET}x", "key name 'a' appears twice"),
    ],
)
def test_malformed_keys_are_refused_without_echoing_them(text, message):
    with pytest.raises(ConfigError, match=message) as info:
        parse_keys(text, source="$K")
    assert SECRET not in str(info.value)


def test_an_unset_variable_or_missing_file_says_what_to_do(tmp_path):
    with pytest.raises(ConfigError, match=r"export K='name:secret,\.\.\.'"):
        KeyRing.from_config(AuthSection(keys_env="K"), {})
    with pytest.raises(ConfigError, match=r"keys_file = .* cannot be read"):
        KeyRing.from_config(AuthSection(keys_file=tmp_path / "none"))


def test_secrets_stay_out_of_reprs():
    ring = KeyRing({"ops": SECRET})
    assert SECRET not in repr(ring) and SECRET not in str(vars(ring))
