r"""Answer signals: cheap checks on a draft answer that tell a cascade when to escalate.

A prompt embedding sees only the question. Once a cheap model has answered, its draft carries far stronger
evidence of failure: arithmetic that does not add up, no final answer in the expected format, hedging, a
non-integer where counts are expected. `AnswerSignals` turns a draft into a short vector of such checks, and
`WithAnswerSignals` appends it to any featurizer's query features, so a `CurveProbe` trained on
``join_draft(query, draft)`` texts predicts each route's reward *given the draft* (see
`adaptive_router.runnables.cascade`).

The checks are plain Python (no torch): every one is a named built-in, so a probe's manifest can record them
and `Probe.load` rebuilds them without pickle.

The draft's final answer is read by a regular expression you give (``final_answer=r"####\s*(.+)"``) or by
the built-in reader (``final_answer="auto"``, `final_answer`): a GSM8K ``#### 42`` line, else ``\boxed{42}``,
else "the answer is 42", else the draft's last number (which counts as no stated final answer).

Examples
--------
>>> arithmetic_checks("16 - 3 = 13 eggs, then <<13-4=8>>")
(2, 1)
>>> final_answer("So she sells 9 eggs.\n#### $18"), final_answer("She makes 18 dollars.")
(('$18', True), ('18', False))
"""

from __future__ import annotations

import ast
import contextlib
import math
import operator
import re
from collections.abc import Sequence
from typing import Any

import numpy as np

from adaptive_router.errors import ConfigError
from adaptive_router.prompts.text import split_draft

__all__ = ["AUTO_FINAL_ANSWER", "AnswerSignals", "WithAnswerSignals", "arithmetic_checks", "final_answer"]


DEFAULT_HEDGES = (
    "however",
    "assum",
    "approximately",
    "not possible",
    "can't",
    "cannot",
    "round",
    "actually",
    "wait",
    "unclear",
    "not enough",
    "but ",
)
"""Lower-case fragments counted as hedging."""

AUTO_FINAL_ANSWER = "auto"
"""``AnswerSignals(final_answer=AUTO_FINAL_ANSWER)`` reads the final answer with the built-in `final_answer`
(no regular expression has to be given: ``"auto"`` has no capturing group, so it is never a valid pattern)."""

_NUM = r"\d[\d,]*(?:\.\d+)?"
_EQUATION = re.compile(
    r"((?:[(\s]*\$?" + _NUM + r"%?[)\s]*[-+*/x×÷^][\s(]*)+\$?" + _NUM + r"%?[)\s]*)"
    r"=\s*\$?(-?" + _NUM + r"(?:/" + _NUM + r")?)"
)
_NOT_ARITHMETIC = (ValueError, SyntaxError, ZeroDivisionError, OverflowError)
"""What `_arithmetic` raises for text it cannot evaluate."""
_OPERATORS: dict[type, Any] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.Pow: operator.pow,
    ast.USub: operator.neg,
    ast.UAdd: operator.pos,
}


_MARKED = re.compile(r"####\s*([^\n]+)")
_BOXED = re.compile(r"\\boxed\{([^{}]*)\}")
_STATED = re.compile(
    r"answer\s+is\s*:?\s*(\$?\s*-?" + _NUM + r"(?:\s*/\s*" + _NUM + r")?)", re.IGNORECASE
)
_ANY_NUMBER = re.compile(r"-?\$?" + _NUM)
_PLAIN_NUMBER = re.compile(_NUM)


_QUESTION_NAMES = (
    "question_numbers_used", "answer_in_question", "log_length_ratio", "log_draft_numbers",
    "log_question_numbers",
)  # fmt: skip


def _numbers(text: str) -> set[str]:
    return {n.replace(",", "").rstrip(".") for n in _PLAIN_NUMBER.findall(text)}


def _question_checks(question: str, draft: str, answer: str | None) -> list[float]:
    """The draft read against its question (see `AnswerSignals`' ``question``)."""
    asked, used = _numbers(question), _numbers(draft)
    given = None if answer is None else answer.replace(",", "").replace("$", "").strip().rstrip(".")
    return [
        len(asked & used) / max(len(asked), 1),
        float(given is not None and given in asked),
        math.log1p(len(draft)) - math.log1p(len(question)),
        math.log1p(len(used)),
        math.log1p(len(asked)),
    ]


def final_answer(draft: str) -> tuple[str | None, bool]:
    r"""The final answer of a draft and whether the draft states it: ``(answer, stated)``.

    Read in this order, the last occurrence of each winning: a ``#### answer`` line (GSM8K's format), a
    ``\boxed{answer}``, "the answer is <number>" (any case); a draft that states none of them gives its last
    number with ``stated=False``, and ``(None, False)`` when it holds no number at all.

    Examples
    --------
    >>> final_answer("3 + 4 = 7\n#### 7")
    ('7', True)
    >>> final_answer("Adding them, the answer is 1,250 apples.")
    ('1,250', True)
    >>> final_answer("She pays 3 * 4 = 12, then 12 + 5 = 17 dollars."), final_answer("no idea")
    (('17', False), (None, False))
    """
    for pattern in (_MARKED, _BOXED, _STATED):
        found = pattern.findall(draft)
        if found:
            return found[-1].strip(), True
    numbers = _ANY_NUMBER.findall(draft)
    return (numbers[-1], False) if numbers else (None, False)


def _evaluate(node: ast.AST) -> float:
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)):
        return float(node.value)
    if isinstance(node, ast.BinOp) and type(node.op) in _OPERATORS:
        left, right = _evaluate(node.left), _evaluate(node.right)
        if isinstance(node.op, ast.Pow) and abs(right) > 12:
            raise ValueError("exponent too large")
        return float(_OPERATORS[type(node.op)](left, right))
    if isinstance(node, ast.UnaryOp) and type(node.op) in _OPERATORS:
        return float(_OPERATORS[type(node.op)](_evaluate(node.operand)))
    raise ValueError("not arithmetic")


def _arithmetic(expr: str) -> float:
    for old, new in ((",", ""), ("$", ""), ("×", "*"), ("x", "*"), ("÷", "/"), ("^", "**")):
        expr = expr.replace(old, new)
    return _evaluate(ast.parse(expr.strip(), mode="eval").body)


def arithmetic_checks(text: str) -> tuple[int, int]:
    """``(checked, wrong)``: evaluable equations ``a op b ... = c`` in `text`, and how many are wrong.

    Only numbers, ``+ - * / x × ÷ ^`` and parentheses are evaluated (a safe AST walk, never ``eval``);
    percentages are skipped; a result is wrong when it is off by more than 1% (and more than 0.01).
    """
    checked = wrong = 0
    for expr, value in _EQUATION.findall(text):
        if "%" in expr:
            continue
        try:
            left, right = _arithmetic(expr), _arithmetic(value)
        except _NOT_ARITHMETIC:
            continue
        checked += 1
        wrong += not math.isclose(left, right, rel_tol=1e-2, abs_tol=1e-2)
    return checked, wrong


class AnswerSignals:
    """Checks on a draft answer -> a float vector (log-scaled counts and 0/1 flags).

    Parameters
    ----------
    final_answer : str, optional
        A regular expression whose first group captures the final answer (e.g. ``r"####\\s*(.+)"`` for
        GSM8K-style answers), or ``"auto"`` (`AUTO_FINAL_ANSWER`) for the built-in reader `final_answer`.
        Adds: no final answer found (with ``"auto"``: none stated, see `final_answer`), the answer is not a
        number, it is not an integer, it is negative, and log(1 + |answer|). None (default): none of these.
    hedges : sequence of str
        Lower-case fragments counted as hedging.
    question : bool
        Also read the question beside the draft (`transform`'s ``questions``; `WithAnswerSignals` passes
        them): the share of the question's numbers the draft uses, whether the final answer is one of the
        question's numbers, log draft length over question length, and log(1 + count) of the distinct
        numbers in each. A draft that skips a given quantity or copies one as its answer is often wrong (on
        RouteLLM's GSM8K train half they raise the cross-validated AUC of Mixtral's correctness from the
        draft from 0.761 to 0.789).

    Examples
    --------
    >>> signals = AnswerSignals(final_answer=r"####\\s*(.+)")
    >>> dict(zip(signals.names, signals.transform(["2 + 2 = 5\\n#### 5"])[0].round(2)))["arithmetic_wrong"]
    np.float32(0.69)
    """

    def __init__(
        self,
        *,
        final_answer: str | None = None,
        hedges: Sequence[str] = DEFAULT_HEDGES,
        question: bool = False,
    ) -> None:
        if final_answer is not None and final_answer != AUTO_FINAL_ANSWER:
            try:
                pattern = re.compile(final_answer)
            except re.error as exc:
                raise ConfigError(f"final_answer is not a valid regular expression: {exc}") from exc
            if pattern.groups < 1:
                raise ConfigError(
                    f"final_answer needs a capturing group for the answer, got {final_answer!r}"
                )
        if isinstance(hedges, str) or not all(isinstance(h, str) and h for h in hedges):
            raise ConfigError(f"hedges must be a sequence of non-empty strings, got {hedges!r}")
        if not isinstance(question, bool):
            raise ConfigError(f"question must be True or False, got {question!r}")
        self.final_answer = final_answer
        self.hedges = tuple(h.lower() for h in hedges)
        self.question = question
        self._auto = final_answer == AUTO_FINAL_ANSWER
        self._pattern = re.compile(final_answer) if final_answer is not None and not self._auto else None

    @property
    def names(self) -> tuple[str, ...]:
        """One name per output column."""
        names: tuple[str, ...] = (
            "log_length", "log_lines", "log_hedges", "log_equations", "arithmetic_wrong", "any_wrong",
        )  # fmt: skip
        if self._pattern is not None or self._auto:
            names += ("no_final_answer", "not_a_number", "not_integer", "negative", "log_abs_answer")
        if self.question:
            names += _QUESTION_NAMES
        return names

    def identity(self) -> dict[str, Any]:
        """What a probe manifest records to rebuild these signals (``question`` only when set, so older
        manifests read the same)."""
        out: dict[str, Any] = {"final_answer": self.final_answer, "hedges": list(self.hedges)}
        return {**out, "question": True} if self.question else out

    def _answer(self, draft: str) -> tuple[str | None, bool]:
        if self._auto:
            return final_answer(draft)
        if self._pattern is not None:
            match = self._pattern.search(draft)
            return (None, False) if match is None else (match.group(1), True)
        return final_answer(draft)  # read for the question checks only

    def _row(self, draft: str, question: str | None = None) -> list[float]:
        lower = draft.lower()
        checked, wrong = arithmetic_checks(draft)
        row = [
            math.log1p(len(draft)),
            math.log1p(draft.count("\n")),
            math.log1p(sum(lower.count(h) for h in self.hedges)),
            math.log1p(checked),
            math.log1p(wrong),
            float(wrong > 0),
        ]
        answer, stated = self._answer(draft)
        if self._pattern is not None or self._auto:
            number = math.nan
            if answer is not None:
                with contextlib.suppress(*_NOT_ARITHMETIC):
                    number = _arithmetic(answer.strip().rstrip("."))
            ok = math.isfinite(number)
            row += [
                float(not stated),
                float(answer is not None and not ok),
                float(ok and number != round(number)),
                float(ok and number < 0),
                math.log1p(abs(number)) if ok else 0.0,
            ]
        if self.question:
            row += _question_checks(question or "", draft, answer)
        return row

    def transform(self, drafts: Sequence[str], questions: Sequence[str] | None = None) -> np.ndarray:
        """``(n, len(names))`` float32 signals, one row per draft (``questions``: the query of each, read
        with ``question=True``; without them the question checks see an empty question)."""
        if questions is not None and len(questions) != len(drafts):
            raise ConfigError(f"{len(questions)} questions for {len(drafts)} drafts")
        qs: Sequence[str | None] = questions if questions is not None else [None] * len(drafts)
        rows = [self._row(d, q) for d, q in zip(drafts, qs, strict=True)]
        return np.asarray(rows, dtype=np.float32).reshape(len(drafts), len(self.names))

    def __repr__(self) -> str:
        return f"AnswerSignals(final_answer={self.final_answer!r}, question={self.question!r})"


class WithAnswerSignals:
    """A featurizer for cascades: the base featurizer on the query, `AnswerSignals` on the draft.

    Texts are ``join_draft(query, draft)``; the query part goes through `base` (and its feature cache), the
    draft through `signals`. With ``base=None`` only the signals are used: with a few hundred training
    queries a 384-dimensional query embedding mostly adds noise to a dozen strong draft checks (on
    RouteLLM's GSM8K, see docs/cascade.md). A text without a draft raises `ConfigError`.
    """

    def __init__(self, base: Any, signals: AnswerSignals) -> None:
        if base is not None and not (hasattr(base, "identity") and hasattr(base, "transform")):
            raise ConfigError(f"base must be a featurizer (identity() and transform()), got {base!r}")
        if not isinstance(signals, AnswerSignals):
            raise ConfigError(f"signals must be an AnswerSignals, got {type(signals).__name__}")
        self.base = base
        self.signals = signals

    def identity(self) -> dict[str, Any]:
        """The base featurizer's identity plus the signals'."""
        base = {"featurizer_id": "none"} if self.base is None else self.base.identity()
        return {**base, "signals": self.signals.identity()}

    def transform(self, texts: Sequence[str]) -> np.ndarray:
        """``(n, d_base + len(signals.names))`` float32 features."""
        pairs = [split_draft(t) for t in texts]
        missing = [i for i, (_, draft) in enumerate(pairs) if draft is None]
        if missing:
            raise ConfigError(
                f"{len(missing)} text(s) have no draft answer (first at index {missing[0]}); "
                "a cascade probe reads join_draft(query, draft)"
            )
        drafts = self.signals.transform([d or "" for _, d in pairs], [q for q, _ in pairs])
        if self.base is None:
            return drafts
        queries = self.base.transform([q for q, _ in pairs])
        return np.hstack([np.asarray(queries, dtype=np.float32), drafts])

    def __repr__(self) -> str:
        return f"WithAnswerSignals({self.base!r}, {self.signals!r})"
