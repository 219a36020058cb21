"""Tests for adaptive_router.prices: price tables from TOML or JSON, and the cost of a request."""

from __future__ import annotations

import json

import pytest

from adaptive_router.errors import ConfigError
from adaptive_router.prices import Price, PriceTable

_TOML = """
[models.small]
input = 0.15
output = 0.60

[models."gpt-4.1"]
input = 2
output = 8
"""


def test_toml_and_json_files_give_the_same_table(tmp_path):
    toml = tmp_path / "p.toml"
    toml.write_text(_TOML)
    flat = tmp_path / "p.json"  # the models level may be left out
    flat.write_text(json.dumps({"small": {"input": 0.15, "output": 0.6}, "gpt-4.1": [2, 8]}))
    a, b = PriceTable.from_file(toml), PriceTable.from_file(flat)
    assert dict(a) == dict(b) == {"small": Price(0.15, 0.6), "gpt-4.1": Price(2, 8)}
    assert a.cost("gpt-4.1", input_tokens=1_000_000, output_tokens=250_000) == pytest.approx(4.0)
    assert a.usage_cost("small", {"input_tokens": 10_000, "output_tokens": None}) == pytest.approx(0.0015)


_ENTRY = "[models.small]\n"


@pytest.mark.parametrize(
    ("name", "text", "match"),
    [
        ("p.yaml", "small: 1", r"must end in \.toml or \.json, got '.*p\.yaml'"),
        ("p.toml", "[models.small\ninput = 1", r"p\.toml' does not parse: "),
        ("p.json", "{", r"p\.json' does not parse: "),
        ("p.json", "[1, 2]", r"must hold a table of models, e\.g\. \[models\.NAME\]"),
        ("p.json", "{}", r"a price table needs at least one model"),
        ("p.toml", _ENTRY + "input = 1\n", r"p\.toml: the price of 'small': it needs exactly the keys"),
        ("p.toml", _ENTRY + "input = 1\noutput = 2\nunit = 'usd'\n", r"got \['input', 'output', 'unit'\]"),
        ("p.toml", _ENTRY + "input = -1\noutput = 2\n", r"'small': a price's input must be finite and >= 0"),
        ("p.toml", _ENTRY + "input = '1'\noutput = 2\n", r"input must be a number .*, got '1'"),
        ("p.json", '{"small": [1, 2, 3]}', r"'small' must be \{input = \.\.\., output = \.\.\.\}"),
        ("p.toml", "currency = 'usd'\n" + _ENTRY + "input = 1\noutput = 2\n", r"keys \['currency'\] beside"),
    ],
)
def test_bad_files_fail_with_the_file_and_the_fix(tmp_path, name, text, match):
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(ConfigError, match=match):
        PriceTable.from_file(path)


def test_a_missing_file_and_an_unknown_model_name_what_there_is(tmp_path):
    with pytest.raises(ConfigError, match=r"cannot read the price file '.*nope\.toml'"):
        PriceTable.from_file(tmp_path / "nope.toml")
    table = PriceTable({"small": (1.0, 2.0)})
    with pytest.raises(ConfigError, match=r"no price for model 'large'; the price table has \['small'\]"):
        table.cost("large", 1, 1)
    with pytest.raises(KeyError):
        table["large"]
