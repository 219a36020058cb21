"""Verifiers: the reward of a response against a task's reference answer.

=========================  ==========================================================  ==========
verifier                   reward                                                      runs
=========================  ==========================================================  ==========
``first_line``             first non-empty line equals the answer (numbers as numbers)  in-process
``contains``               the answer appears in the response                          in-process
``math``                   math-verify equivalence (it parses with sympy, which evals)  sandbox
``python_tests``           the response is Python code and passes the answer's tests   sandbox
``reasoning_gym:<name>``   that dataset's own scorer                                   see below
``none``                   no reference answer: only a reward model can score          --
=========================  ==========================================================  ==========

A model's reply is untrusted: a verifier that could execute it (or the task's metadata) runs in the
:mod:`~adaptive_router.app.verifiers.sandbox` (a fresh confined child process per reply: no network, CPU,
memory, file and wall-clock limits, a throwaway folder). Only pure string comparisons run in-process: the
reasoning-gym datasets in :data:`STRING_COMPARE_DATASETS`, and only while their scorer is still
reasoning-gym's base string compare. Every other dataset is sandboxed: ``spiral_matrix`` and ``n_queens``
evaluate replies, ``codeio`` executes bundled code on them, ``bitwise_arithmetic`` evaluates metadata, and
the sympy-based ones parse with ``sympify``. A reply that breaks a limit or makes its scorer raise scores 0.

``python_tests`` is HumanEval-style: the code is the reply's first fenced ```` ```python ```` block (or the
whole reply), preceded by the task's prompt when ``metadata["entry_point"]`` names a function the reply does
not define (a completion of the prompt); the task's ``answer`` holds the tests, run after it, followed by
``check(<entry_point>)`` when an entry point is given. Reward 1 when the program runs to the end.
"""

from __future__ import annotations

import functools
import importlib.util
import math
import re
import weakref
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from adaptive_router.app.verifiers.sandbox import Sandbox, shared_sandbox
from adaptive_router.errors import ConfigError

__all__ = [
    "NO_VERIFIER",
    "STRING_COMPARE_DATASETS",
    "VERIFIERS",
    "check_verifiers",
    "extract_answer",
    "first_line",
    "runs_in_sandbox",
    "score",
    "score_many",
]

NO_VERIFIER = "none"
"""Verifier name of a task without a reference answer (``"verifier": "none"`` in a JSONL dataset)."""

VERIFIERS: dict[str, str] = {
    "first_line": "the first non-empty line equals the answer (numbers compared as numbers); in-process",
    "contains": "the answer appears in the response; in-process",
    "math": "math-verify equivalence; sandboxed",
    "python_tests": "the response's Python code passes the answer's tests (HumanEval style); sandboxed",
}
"""The named verifiers (besides ``reasoning_gym:<dataset>`` and :data:`NO_VERIFIER`) and what they do."""

STRING_COMPARE_DATASETS: frozenset[str] = frozenset(
    {
        "acre", "aiw", "arc_1d", "base_conversion", "basic_arithmetic", "bf", "binary_alternation",
        "caesar_cipher", "count_bits", "count_primes", "course_schedule", "gcd", "isomorphic_strings",
        "largest_island", "lcm", "leg_counting", "letter_counting", "list_functions", "mahjong_puzzle",
        "maze", "modulo_grid", "number_filtering", "number_sequence", "ransom_note", "rotate_matrix",
        "rotten_oranges", "simple_equations", "simple_geometry", "string_manipulation", "string_splitting",
        "string_synthesis", "syllogism", "word_sequence_reversal",
    }
)  # fmt: skip
"""reasoning-gym datasets scored in-process: those whose scorer (read in reasoning-gym 0.1) is the base
``ProceduralDataset.score_answer``, an exact or substring string compare. Checked again at run time: a dataset
whose scorer has changed is sandboxed."""

_RG_PREFIX = "reasoning_gym:"
_JOBS = "adaptive_router.app.verifiers.jobs"
_EXTRAS = {"math": "math_verify", _RG_PREFIX: "reasoning_gym"}
_CHECKED: weakref.WeakKeyDictionary[Sandbox, set[str]] = weakref.WeakKeyDictionary()
_FENCE = re.compile(r"```[ \t]*(?:python|py|python3)?[ \t]*\n(.*?)```", re.DOTALL | re.IGNORECASE)


def first_line(response: str) -> str:
    """The first non-empty line of a completion, stripped.

    Examples
    --------
    >>> first_line(" 17\\n3 + 4 = 7")
    '17'
    """
    for line in response.splitlines():
        if line.strip():
            return line.strip()
    return ""


def _as_number(text: str) -> float | None:
    try:
        value = float(text.replace(",", ""))
    except ValueError:
        return None
    return value if math.isfinite(value) else None


_LAST_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?")
_BOXED = re.compile(r"\\boxed\{([^{}]*)\}")


def _canonical(text: str) -> str:
    """An answer in one spelling per value: numbers as their shortest exact form, text stripped."""
    number = _as_number(text)
    if number is None:
        return text.strip()
    return str(int(number)) if number == int(number) and abs(number) < 2**53 else repr(number)


def extract_answer(
    verifier: str, response: str, answer: str = "", *, final_answer: str | None = None
) -> str | None:
    r"""The normalised final answer of ``response``, the value votes are counted on (None: no answer).

    With ``final_answer`` (a regular expression with one group), its last match; otherwise by verifier:
    ``first_line`` the first line, ``reasoning_gym:*`` what its scorer reads, ``math`` the last ``\boxed{}``
    or number; ``contains``, ``python_tests`` and ``none`` have no answer to extract. Numbers are written
    one way (``7.0`` and ``7`` vote together). Never executes anything.

    Examples
    --------
    >>> extract_answer("first_line", " 7.0\n3 + 4 = 7")
    '7'
    >>> extract_answer("contains", "the answer is #### 12", final_answer=r"####\s*(\S+)")
    '12'
    >>> extract_answer("python_tests", "def f(): ...") is None
    True
    """
    if final_answer is not None:
        found = re.findall(final_answer, response)
        if not found:
            return None
        last = found[-1]
        return _canonical(last if isinstance(last, str) else last[0])
    if verifier == "first_line":
        got = first_line(response)
    elif verifier.startswith(_RG_PREFIX):
        got = _rg_reply(response, answer)
    elif verifier == "math":
        boxed = _BOXED.findall(response)
        numbers = _LAST_NUMBER.findall(response)
        got = boxed[-1] if boxed else numbers[-1] if numbers else ""
    else:
        return None
    return _canonical(got) if got.strip() else None


def _first_line_reward(response: str, answer: str) -> float:
    got = first_line(response)
    a, b = _as_number(got), _as_number(answer)
    if a is not None and b is not None:
        return float(abs(a - b) < 1e-9)
    return float(got == answer.strip())


@functools.cache
def _string_scorer(name: str) -> Any:
    """reasoning-gym's scorer for ``name`` when it is the base string compare, else None (sandbox it)."""
    if name not in STRING_COMPARE_DATASETS:
        return None
    from reasoning_gym.dataset import ProceduralDataset
    from reasoning_gym.factory import DATASETS

    cls, config_cls = DATASETS[name]
    if cls.score_answer is not ProceduralDataset.score_answer:
        return None
    return cls(config=config_cls()).score_answer


def _kind(verifier: str) -> str:
    if verifier == NO_VERIFIER:
        raise ConfigError(
            "this task has no verifier (verifier 'none'); score its responses with a reward model"
        )
    if verifier.startswith(_RG_PREFIX) and verifier[len(_RG_PREFIX) :]:
        return _RG_PREFIX
    if verifier in VERIFIERS:
        return verifier
    raise ConfigError(
        f"unknown verifier {verifier!r}; choose one of {sorted(VERIFIERS)} or 'reasoning_gym:<dataset>'"
    )


def runs_in_sandbox(verifier: str) -> bool:
    """Whether ``verifier`` scores in the sandbox (it may execute the reply) rather than in-process.

    Examples
    --------
    >>> runs_in_sandbox("first_line"), runs_in_sandbox("reasoning_gym:spiral_matrix")
    (False, True)
    """
    kind = _kind(verifier)
    if kind == _RG_PREFIX:
        name = verifier[len(_RG_PREFIX) :]
        return name not in STRING_COMPARE_DATASETS or _string_scorer(name) is None
    return kind in ("math", "python_tests")


def check_verifiers(verifiers: Iterable[str], *, sandbox: Sandbox | None = None) -> None:
    """Check that every verifier can score, before anything is spent; start the sandbox they need.

    Raises ConfigError naming the fix: an unknown verifier, a missing extra (``pip install
    'adaptive-router[tasks]'``) or an unknown reasoning-gym dataset; SandboxError when the sandbox cannot
    start.
    """
    box = sandbox or shared_sandbox()
    for verifier in sorted(set(verifiers)):
        done = _CHECKED.setdefault(box, set())
        if verifier in done:
            continue
        kind = _kind(verifier)
        module = _EXTRAS.get(kind)
        if module is not None and importlib.util.find_spec(module) is None:
            package = module.replace("_", "-")
            raise ConfigError(
                f"the {verifier!r} verifier needs {package}: pip install 'adaptive-router[tasks]'"
            )
        if kind == _RG_PREFIX:
            from reasoning_gym.factory import DATASETS

            name = verifier[len(_RG_PREFIX) :]
            if name not in DATASETS:
                raise ConfigError(f"unknown reasoning-gym dataset {name!r} in verifier {verifier!r}")
        if runs_in_sandbox(verifier):
            _prepare(verifier, box)
        done.add(verifier)


def _prepare(verifier: str, box: Sandbox) -> None:
    if verifier.startswith(_RG_PREFIX):
        box.prepare(f"{_JOBS}:load_reasoning_gym", verifier[len(_RG_PREFIX) :])
    elif verifier == "math":
        box.prepare("importlib:import_module", "math_verify")
    else:
        box.prepare("importlib:import_module", _JOBS)


def _program(response: str, answer: str, metadata: Mapping[str, Any], prompt: Any) -> str:
    found = _FENCE.search(response)
    code = found.group(1) if found else response
    entry = metadata.get("entry_point")
    if entry is not None and (not isinstance(entry, str) or not entry.isidentifier()):
        raise ConfigError(f"python_tests: metadata 'entry_point' must be a function name, got {entry!r}")
    defined = entry is not None and re.search(rf"^\s*def\s+{entry}\s*\(", code, re.MULTILINE)
    if entry is not None and not defined and isinstance(prompt, str):
        code = prompt + code  # a HumanEval completion continues the prompt's function
    program = f"{code}\n\n{answer}\n"
    return program + (f"\ncheck({entry})\n" if entry is not None else "")


def _rg_reply(response: str, answer: str) -> str:
    """What a reasoning-gym scorer sees: the first line, or the whole reply when the answer spans lines."""
    if "\n" in answer.strip():
        return response.strip()
    return first_line(response) or response


def _reward(value: Any) -> float:
    """A sandboxed job's value as a reward; anything but a number in [0, 1] (a forged result) is 0."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return 0.0
    return float(value) if 0.0 <= value <= 1.0 else 0.0


def score_many(
    verifier: str,
    responses: Sequence[str],
    answer: str,
    metadata: Mapping[str, Any] | None = None,
    *,
    prompt: Any = None,
    sandbox: Sandbox | None = None,
) -> list[float]:
    """Score several responses to one task; sandboxed verifiers run them side by side, one child each.

    Examples
    --------
    >>> score_many("contains", ["it is 42.", "41"], "42")
    [1.0, 0.0]
    """
    meta = metadata or {}
    kind = _kind(verifier)
    if kind == "first_line":
        return [_first_line_reward(r, answer) for r in responses]
    if kind == "contains":
        return [float(answer.strip() in r) for r in responses]
    if kind == _RG_PREFIX and not runs_in_sandbox(verifier):
        scorer = _string_scorer(verifier[len(_RG_PREFIX) :])
        entry = {"answer": answer, "metadata": dict(meta.get("rg_metadata", {}))}
        return [float(scorer(_rg_reply(r, answer), entry)) for r in responses]
    check_verifiers([verifier], sandbox=sandbox)
    box = sandbox or shared_sandbox()
    if kind == _RG_PREFIX:
        name, rg_meta = verifier[len(_RG_PREFIX) :], dict(meta.get("rg_metadata", {}))
        args = [[name, _rg_reply(r, answer), answer, rg_meta] for r in responses]
        results = box.map(f"{_JOBS}:reasoning_gym_score", args)
    elif kind == "math":
        results = box.map(f"{_JOBS}:math_verify", [[r, answer] for r in responses])
    else:
        programs = [[_program(r, answer, meta, prompt)] for r in responses]
        results = box.map(f"{_JOBS}:python_tests", programs)
    return [_reward(r.value) if r.ok else 0.0 for r in results]


def score(
    verifier: str,
    response: str,
    answer: str,
    metadata: Mapping[str, Any] | None = None,
    *,
    prompt: Any = None,
    sandbox: Sandbox | None = None,
) -> float:
    """Score ``response`` against ``answer`` with the named verifier (see the table above).

    Examples
    --------
    >>> score("first_line", " 42\\n1 + 1 = 2", "42")
    1.0
    """
    return score_many(verifier, [response], answer, metadata, prompt=prompt, sandbox=sandbox)[0]
