"""Shared by the server tests: API keys, the upstream key, and a config around one fake upstream."""

from __future__ import annotations

ALICE = "sk-alice-0123456789abcdef"
BOB = "sk-bob-0123456789abcdef00"
UPSTREAM_SECRET = "sk-upstream-secret-0123456789"
ENV = {"AR_TEST_KEYS": f"alice:{ALICE},bob:{BOB}", "AR_UPSTREAM_KEY": UPSTREAM_SECRET}


def config_text(
    url: str,
    *,
    keys: bool = True,
    server: str = "",
    budgets: str = "",
    router: str = "",
    backends: str = "",
    budget: float = 2.0,
    max_k: int = 4,
    rounds: str = "off",
) -> str:
    """A config with backend ``up`` at `url` and router ``adaptive`` (best-of-`max_k`, majority vote).

    ``rounds = "off"`` by default, so k is the planned one and tests can name it.
    """
    auth = '[auth]\nkeys_env = "AR_TEST_KEYS"\n' if keys else ""
    return f"""
[server]
max_request_bytes = 4096
max_tokens = 64
request_timeout_s = 10
{server}
{auth}
[budgets]
{budgets}

[backends.up]
type = "openai"
base_url = "{url}"
model = "fake-model"
api_key_env = "AR_UPSTREAM_KEY"
max_attempts = 2
timeout_s = 5
deadline_s = 8
{backends}

[routers.adaptive]
backend = "up"
budget_per_query = {budget}
max_k = {max_k}
rounds = "{rounds}"
window_size = 64
max_wait_ms = 20
{router}
"""
