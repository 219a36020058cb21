"""Model prices: dollars per million input and output tokens, and the cost of a request from its usage.

A price table is a mapping from model (procedure) name to `Price`. It is read from a file the user gives
(TOML or JSON, one entry per model with ``input`` and ``output`` in dollars per million tokens)::

    [models.gpt-4o-mini]
    input = 0.15
    output = 0.60

    [models.gpt-4o]
    input = 2.50
    output = 10.00

(JSON: ``{"models": {"gpt-4o": {"input": 2.5, "output": 10.0}}}``; the ``models`` level may be left out.
A name with a dot is quoted in TOML: ``[models."gpt-4.1"]``.) Every error names the file and the entry, and
``evaluate --prices`` reads the file before it loads anything else.

Examples
--------
>>> table = PriceTable({"small": (0.15, 0.60), "large": Price(2.5, 10.0)})
>>> table.cost("large", input_tokens=1_000, output_tokens=500)
0.0075
>>> round(table.usage_cost("small", {"input_tokens": 2_000, "output_tokens": 100}), 8)
0.00036
>>> "medium" in table
False
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from os import PathLike
from pathlib import Path
from typing import Any

from adaptive_router.errors import ConfigError

__all__ = ["Price", "PriceTable"]

_PER = 1_000_000


@dataclass(frozen=True)
class Price:
    """Dollars per million input tokens and per million output tokens."""

    input: float
    output: float

    def __post_init__(self) -> None:
        for name in ("input", "output"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ConfigError(
                    f"a price's {name} must be a number of dollars per million tokens, got {value!r}"
                )
            if not math.isfinite(value) or value < 0:
                raise ConfigError(f"a price's {name} must be finite and >= 0, got {value!r}")

    def cost(self, input_tokens: int, output_tokens: int) -> float:
        """Dollars for one request with these token counts."""
        return (self.input * input_tokens + self.output * output_tokens) / _PER


def _price(name: str, value: Any) -> Price:
    if isinstance(value, Price):
        return value
    try:
        if isinstance(value, Mapping):
            unknown = set(value) - {"input", "output"}
            if unknown or not {"input", "output"} <= set(value):
                raise ConfigError(
                    "it needs exactly the keys 'input' and 'output' (dollars per million tokens), got "
                    f"{sorted(value)}"
                )
            return Price(value["input"], value["output"])
        if isinstance(value, (tuple, list)) and len(value) == 2:
            return Price(value[0], value[1])
    except ConfigError as exc:
        raise ConfigError(f"the price of {name!r}: {exc}") from None
    raise ConfigError(
        f"the price of {name!r} must be {{input = ..., output = ...}} or an (input, output) pair, "
        f"got {value!r}"
    )


class PriceTable(Mapping[str, Price]):
    """Prices by model name; ``cost`` turns token counts into dollars.

    Parameters
    ----------
    prices : mapping of str to Price, ``(input, output)`` or ``{"input": ..., "output": ...}``
        Dollars per million tokens for each model.
    """

    def __init__(self, prices: Mapping[str, Any]) -> None:
        if not isinstance(prices, Mapping) or not prices:
            raise ConfigError("a price table needs at least one model: {name: {input = ..., output = ...}}")
        self._prices = {str(name): _price(str(name), value) for name, value in prices.items()}

    @classmethod
    def from_file(cls, path: str | PathLike[str]) -> PriceTable:
        """Read a table from a ``.toml`` or ``.json`` file (see the module's docstring for the format)."""
        file = Path(path)
        try:
            text = file.read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"cannot read the price file {str(file)!r}: {exc}") from exc
        try:
            if file.suffix.lower() == ".toml":
                if sys.version_info >= (3, 11):
                    import tomllib
                else:  # pragma: no cover - Python 3.10
                    import tomli as tomllib
                data: Any = tomllib.loads(text)
            elif file.suffix.lower() == ".json":
                data = json.loads(text)
            else:
                raise ConfigError(f"a price file must end in .toml or .json, got {str(file)!r}")
        except ValueError as exc:  # TOMLDecodeError and JSONDecodeError are ValueErrors
            raise ConfigError(f"the price file {str(file)!r} does not parse: {exc}") from exc
        if isinstance(data, Mapping) and "models" in data:
            others = sorted(set(data) - {"models"})
            if others:
                raise ConfigError(
                    f"the price file {str(file)!r} has top-level keys {others} beside 'models'; put every "
                    "model under models ([models.NAME] in TOML)"
                )
            data = data["models"]
        if not isinstance(data, Mapping):
            raise ConfigError(
                f"the price file {str(file)!r} must hold a table of models, e.g. [models.NAME] with "
                "input and output dollars per million tokens"
            )
        try:
            return cls(data)
        except ConfigError as exc:
            raise ConfigError(f"{file}: {exc}") from None

    def __getitem__(self, model: str) -> Price:
        try:
            return self._prices[model]
        except KeyError:
            raise KeyError(model) from None

    def __iter__(self) -> Iterator[str]:
        return iter(self._prices)

    def __len__(self) -> int:
        return len(self._prices)

    def __repr__(self) -> str:
        return f"PriceTable({self._prices!r})"

    def cost(self, model: str, input_tokens: int, output_tokens: int) -> float:
        """Dollars for one request to `model`; a `ConfigError` names the known models if it has no price."""
        if model not in self._prices:
            raise ConfigError(f"no price for model {model!r}; the price table has {sorted(self._prices)}")
        return self._prices[model].cost(input_tokens, output_tokens)

    def usage_cost(self, model: str, usage: Mapping[str, Any]) -> float:
        """Dollars for a LangChain ``usage_metadata`` (input and output tokens) spent on `model`."""
        tokens_in, tokens_out = (int(usage.get(key, 0) or 0) for key in ("input_tokens", "output_tokens"))
        return self.cost(model, tokens_in, tokens_out)
