"""Tests for adaptive_router.server.config: validation with errors that name the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from adaptive_router.errors import ConfigError
from adaptive_router.server.config import is_loopback, load_config, parse_config, with_overrides

BACKEND = '[backends.up]\ntype = "openai"\nbase_url = "http://127.0.0.1:9/v1"\nmodel = "m"\n'
ROUTER = '[routers.adaptive]\nbackend = "up"\nbudget_per_query = 2\n'


def test_a_minimal_config_gets_its_defaults():
    config = parse_config(BACKEND + ROUTER)
    assert config.server.host == "127.0.0.1" and config.server.workers == 1
    router = config.routers["adaptive"]
    assert router.k_max == 4 and router.budget_range() == (1.0, 4.0) and router.probe is None
    assert config.default_router == "adaptive" and not config.budgets.limited


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (BACKEND + ROUTER.replace("= 2", '= "two"'), r"routers\.adaptive\.budget_per_query: Input should be"),
        (BACKEND + ROUTER + "windw_size = 3\n", r"routers\.adaptive\.windw_size: unknown key"),
        (BACKEND.replace("http://", "ftp://") + ROUTER, r"backends\.up\.base_url: must start with http"),
        (
            BACKEND + ROUTER.replace('"up"', '"upp"'),
            r"routers\.adaptive\.backend = 'upp' names no \[backends\]",
        ),
        (BACKEND + ROUTER + 'fallback = "nope"\n', r"routers\.adaptive\.fallback = 'nope'"),
        (BACKEND + ROUTER + "max_budget = 1.5\n", r"budget_per_query = 2 must lie within \[min_budget"),
        (
            BACKEND + '[routers.r]\nstrategy = "route"\nbudget_per_query = 1\n',
            r'routers\.r: strategy = "route" needs',
        ),
        (BACKEND + ROUTER + '[routers.adaptive.reranker]\ntype = "llm_judge"\n', "'llm_judge' needs judge"),
        (BACKEND + ROUTER + "[server]\nport = 99999\n", r"server\.port: Input should be less than"),
        (BACKEND + ROUTER + "deadline_s = 500\n", r"unknown key"),
        ("[backends\n", r"not valid TOML"),
    ],
)
def test_errors_name_the_key(text, message):
    with pytest.raises(ConfigError, match=message):
        parse_config(text, source="router.toml")


def test_the_deadline_must_fit_the_request_timeout():
    text = BACKEND + "deadline_s = 200\n" + ROUTER
    with pytest.raises(
        ConfigError, match=r"backends\.up\.deadline_s = 200 exceeds server\.request_timeout_s"
    ):
        parse_config(text)


def test_a_public_address_needs_keys_and_workers_with_budgets_need_a_state_file():
    public = '[server]\nhost = "0.0.0.0"\n' + BACKEND + ROUTER
    with pytest.raises(ConfigError, match=r"needs API keys: set auth\.keys_env or auth\.keys_file"):
        parse_config(public)
    assert parse_config(public + '[auth]\nkeys_env = "K"\n').server.host == "0.0.0.0"
    config = parse_config(BACKEND + ROUTER + "[budgets]\nper_key = 10\n")
    with pytest.raises(ConfigError, match=r"workers = 2 with per-key budgets needs budgets\.state_file"):
        with_overrides(config, workers=2)
    with pytest.raises(ConfigError, match="needs API keys"):
        with_overrides(config, host="10.0.0.1")
    assert with_overrides(config, port=8123).server.port == 8123


def test_paths_resolve_against_the_config_folder(tmp_path):
    (tmp_path / "sub").mkdir()
    path = tmp_path / "sub" / "router.toml"
    path.write_text(BACKEND + ROUTER + 'probe = "probe-dir"\n[budgets]\nstate_file = "state.db"\n')
    config = load_config(path)
    assert config.routers["adaptive"].probe == tmp_path / "sub" / "probe-dir"
    assert config.budgets.state_file == Path(tmp_path / "sub" / "state.db")
    with pytest.raises(ConfigError, match=r"config file .* does not exist; pass --config PATH"):
        load_config(tmp_path / "missing.toml")


def test_route_options_and_loopback():
    text = BACKEND + (
        '[routers.r]\nstrategy = "route"\nroutes = {cheap = "up", expensive = "up"}\n'
        "costs = {cheap = 1, expensive = 10}\nbudget_per_query = 3\n"
    )
    router = parse_config(text).routers["r"]
    assert router.k_max == 1 and sorted(router.option_costs()) == [(1, 1.0), (1, 10.0)]
    assert is_loopback("::1") and is_loopback("127.0.0.2") and not is_loopback("example.com")
