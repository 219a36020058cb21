"""Rerankers: score the k candidates of a best-of-k so the best one is returned.

Four kinds, one small class each: a verifier function (`VerifierReranker`), a transformers
sequence-classification reward model (`RewardModelReranker`), majority vote over extracted answers
(`MajorityVoteReranker`) and an LLM judge (`LLMJudgeReranker`). A reranker may make model calls of its own
(the judge does); it declares what one candidate costs in units (`cost_per_candidate`) so the allocator can
budget for it, and reports the calls it made in `Scores`. It also says what evidence one candidate's score
gives a round planner (`Reranker.evidence`): a verifier's pass/fail (``"rewards"``), an extracted answer to
vote on (``"answers"``) or a score (``"scores"``); a reranker without one (``None``) runs one-shot only.

Rerankers read candidates as text, `candidate_text(message)`: the message's text, or, for a message that
calls tools (an agent's turn, ``with_structured_output``'s answer), its tool calls as canonical JSON (names
and arguments, keys sorted, call ids left out), so that two candidates calling the same tool with the same
arguments agree and a vote never compares empty strings; a JSON text answer is canonicalised the same way.

Examples
--------
>>> vote = MajorityVoteReranker(extract=lambda text: text.strip().split()[-1])
>>> vote.score("2 + 2 =", ["it is 4", "4", "5"]).scores
[0.6666666666666666, 0.6666666666666666, 0.3333333333333333]
"""

from __future__ import annotations

import asyncio
import json
import math
import re
from collections import Counter
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field
from typing import Any

from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.messages.ai import UsageMetadata, add_usage
from langchain_core.runnables import Runnable, RunnableConfig

from adaptive_router.errors import ConfigError

__all__ = [
    "DEFAULT_JUDGE_TEMPLATE",
    "LLMJudgeReranker",
    "MajorityVoteReranker",
    "Reranker",
    "RewardModelReranker",
    "Scores",
    "VerifierReranker",
    "candidate_text",
]

DEFAULT_JUDGE_TEMPLATE = (
    "Rate how correct and helpful the answer is, from 0 (wrong) to 10 (perfect). "
    "Reply with the number only.\n\nQuestion:\n{prompt}\n\nAnswer:\n{candidate}\n\nRating:"
)
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")


def candidate_text(message: BaseMessage) -> str:
    """What a reranker reads of a candidate: its tool calls as canonical JSON when it calls tools, else its
    text (a JSON object or array canonicalised: keys sorted, no spacing).

    Examples
    --------
    >>> call = {"name": "add", "args": {"b": 2, "a": 1}, "id": "call_1"}
    >>> candidate_text(AIMessage("", tool_calls=[call]))
    '[{"args":{"a":1,"b":2},"name":"add"}]'
    >>> candidate_text(AIMessage('{"y": 2, "x": 1}')), candidate_text(AIMessage(" 7 "))
    ('{"x":1,"y":2}', ' 7 ')
    """
    calls = getattr(message, "tool_calls", None) if isinstance(message, AIMessage) else None
    if calls:
        return _canonical([{"name": c["name"], "args": c["args"]} for c in calls])
    text = str(message.text)
    stripped = text.strip()
    if stripped[:1] in ("{", "[") and stripped[-1:] in ("}", "]"):
        try:
            return _canonical(json.loads(stripped))
        except ValueError:
            return text
    return text


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def _zero_usage() -> UsageMetadata:
    return add_usage(None, None)


@dataclass
class Scores:
    """Scores of the candidates (higher is better) and the calls the reranker made to get them."""

    scores: list[float]
    calls: int = 0
    usage: UsageMetadata = field(default_factory=_zero_usage)


class Reranker:
    """Base class: override `score`; `ascore` runs it in a thread unless overridden.

    Attributes
    ----------
    cost_per_candidate : float
        Units one candidate costs the reranker (0 unless it calls a model).
    evidence : {"rewards", "answers", "scores"} or None
        What one candidate's score tells a round planner (see the module docstring); ``None``: nothing it
        can read, so the router samples one-shot.
    """

    cost_per_candidate: float = 0.0
    evidence: str | None = None

    def score(
        self, prompt: str, candidates: Sequence[str], *, config: RunnableConfig | None = None
    ) -> Scores:
        """Score `candidates` (answers to `prompt`); higher is better."""
        raise NotImplementedError

    async def ascore(
        self, prompt: str, candidates: Sequence[str], *, config: RunnableConfig | None = None
    ) -> Scores:
        """Async :meth:`score`."""
        return await asyncio.to_thread(self.score, prompt, candidates, config=config)


def _finite(value: Any, who: str) -> float:
    try:
        out = float(value)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{who} returned {value!r}; it must return a number or a bool") from exc
    return out if math.isfinite(out) else -math.inf


class VerifierReranker(Reranker):
    """Score each candidate with a function ``verify(prompt, candidate) -> float | bool``.

    Examples
    --------
    >>> rr = VerifierReranker(verify=lambda p, c: c.strip() == "4")
    >>> rr.score("2 + 2 =", ["5", " 4"]).scores
    [0.0, 1.0]
    """

    evidence = "rewards"

    def __init__(self, *, verify: Callable[[str, str], float | bool]) -> None:
        self.verify = verify

    def score(
        self, prompt: str, candidates: Sequence[str], *, config: RunnableConfig | None = None
    ) -> Scores:
        """Score with the verifier (NaN scores rank last)."""
        return Scores([_finite(self.verify(prompt, c), "the verifier") for c in candidates])

    async def ascore(
        self, prompt: str, candidates: Sequence[str], *, config: RunnableConfig | None = None
    ) -> Scores:
        """The verifier is a plain function: run it inline."""
        return self.score(prompt, candidates, config=config)


class MajorityVoteReranker(Reranker):
    """Score each candidate by the share of candidates whose extracted answer agrees with it.

    Parameters
    ----------
    extract : callable
        ``extract(text) -> answer | None``; ``None`` (no answer found) scores 0.
        Defaults to the stripped text.

    Examples
    --------
    >>> vote = MajorityVoteReranker()
    >>> vote.answers(["4", " 4 ", "5", ""])
    ['4', '4', '5', '']
    >>> MajorityVoteReranker.shares(["4", "4", "5", None])
    [0.5, 0.5, 0.25, 0.0]
    """

    evidence = "answers"

    def __init__(self, *, extract: Callable[[str], Hashable | None] | None = None) -> None:
        self.extract = extract

    def score(
        self, prompt: str, candidates: Sequence[str], *, config: RunnableConfig | None = None
    ) -> Scores:
        """Vote shares; ties keep the earliest candidate when selecting."""
        return Scores(self.shares(self.answers(candidates)))

    def answers(self, candidates: Sequence[str]) -> list[Hashable | None]:
        """The extracted answer of every candidate (``None``: no answer found)."""
        extract = self.extract or (lambda text: text.strip())
        return [extract(c) for c in candidates]

    @staticmethod
    def shares(answers: Sequence[Hashable | None]) -> list[float]:
        """Each answer's share of all candidates (0 for ``None``)."""
        counts = Counter(a for a in answers if a is not None)
        n = len(answers)
        return [counts[a] / n if a is not None else 0.0 for a in answers]

    async def ascore(
        self, prompt: str, candidates: Sequence[str], *, config: RunnableConfig | None = None
    ) -> Scores:
        """Voting is cheap: run it inline."""
        return self.score(prompt, candidates, config=config)


class RewardModelReranker(Reranker):
    """Score (prompt, candidate) pairs with a transformers sequence-classification reward model.

    The scoring is `adaptive_router.probe.reward_model.RewardModel` (torch lives in the probe): it loads the
    checkpoint on first use, never in ``__init__``; a NaN reward ranks last.

    Parameters
    ----------
    model, label, device, max_length, batch_size
        The checkpoint (a local directory), which logit is the reward, the torch device, the truncation
        length and the pairs per forward pass, as for `RewardModel`.
    """

    evidence = "scores"

    def __init__(
        self, *, model: str, label: int = -1, device: str = "cpu", max_length: int = 512, batch_size: int = 8
    ) -> None:
        from adaptive_router.probe.reward_model import RewardModel

        self.model = model
        self.label = label
        self.device = device
        self.max_length = max_length
        self.batch_size = batch_size
        self.reward_model = RewardModel(
            model=model, label=label, device=device, max_length=max_length, batch_size=batch_size
        )

    def score(
        self, prompt: str, candidates: Sequence[str], *, config: RunnableConfig | None = None
    ) -> Scores:
        """One reward per candidate: the chosen logit of the reward model."""
        rewards = self.reward_model.score(prompt, candidates)
        return Scores([_finite(v, "the reward model") for v in rewards])


class LLMJudgeReranker(Reranker):
    """Ask a judge model to rate each candidate; the first number in its reply is the score.

    One judge request per candidate (concurrent); a reply without a number scores ``-inf``.

    Parameters
    ----------
    judge : Runnable
        Any chat model or Runnable taking a string.
    template : str
        Format string with ``{prompt}`` and ``{candidate}``.
    cost_per_candidate : float
        Units one judge request costs; the strategy adds it to the cost of each sample.
    """

    evidence = "scores"

    def __init__(
        self,
        *,
        judge: Runnable[Any, Any],
        template: str = DEFAULT_JUDGE_TEMPLATE,
        cost_per_candidate: float = 1.0,
    ) -> None:
        if "{prompt}" not in template or "{candidate}" not in template:
            raise ConfigError(f"template must contain {{prompt}} and {{candidate}}, got {template!r}")
        self.judge = judge
        self.template = template
        self.cost_per_candidate = cost_per_candidate

    def _requests(self, prompt: str, candidates: Sequence[str]) -> list[str]:
        return [self.template.format(prompt=prompt, candidate=c) for c in candidates]

    @staticmethod
    def _parse(outputs: Sequence[Any]) -> Scores:
        from adaptive_router.prompts.messages import message_text
        from adaptive_router.strategies.base import to_ai_message, usage_of

        scores: list[float] = []
        usage = _zero_usage()
        for out in outputs:
            if isinstance(out, BaseException):
                scores.append(-math.inf)
                continue
            msg = to_ai_message(out)
            usage = add_usage(usage, usage_of(msg))
            match = _NUMBER.search(message_text(msg))
            scores.append(float(match.group()) if match else -math.inf)
        return Scores(scores, calls=len(outputs), usage=usage)

    def score(
        self, prompt: str, candidates: Sequence[str], *, config: RunnableConfig | None = None
    ) -> Scores:
        """Judge every candidate (the judge's failures score ``-inf``)."""
        outputs = self.judge.batch(self._requests(prompt, candidates), config, return_exceptions=True)
        return self._parse(outputs)

    async def ascore(
        self, prompt: str, candidates: Sequence[str], *, config: RunnableConfig | None = None
    ) -> Scores:
        """Async :meth:`score`."""
        outputs = await self.judge.abatch(self._requests(prompt, candidates), config, return_exceptions=True)
        return self._parse(outputs)
