"""Glue for LangChain's ``*_with_config`` helpers, shared by the routers."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable
from typing import TypeVar, cast

from langchain_core.runnables import RunnableConfig

__all__ = ["config_arg", "precompute_signatures"]

_In = TypeVar("_In")
_Out = TypeVar("_Out")
_Conf = TypeVar("_Conf", RunnableConfig, list[RunnableConfig])


def config_arg(fn: Callable[[_In, _Conf], _Out]) -> Callable[[_In], _Out]:
    """`fn` itself, typed for LangChain's ``*_with_config`` helpers: ``fn(input, config)`` or, for batches,
    ``fn(inputs, configs)``.

    Those helpers call `fn` through ``call_func_with_variable_args``, which passes ``config=`` to any function
    that accepts it, but their annotations list only ``(input)``, ``(input, run_manager)`` and
    ``(input, run_manager, config)``; the cast states the ``(input, config)`` form they also accept.
    """
    return cast("Callable[[_In], _Out]", fn)


def precompute_signatures(cls: type, names: Iterable[str]) -> None:
    """Store ``__signature__`` on the named methods of `cls`.

    LangChain inspects the signature of the function given to ``_call_with_config`` & co. on every call (to
    decide whether to pass config / run_manager); a precomputed ``__signature__`` makes that lookup cheap.
    """
    for name in names:
        fn = getattr(cls, name)
        fn.__signature__ = inspect.signature(fn)
