"""The JSONL outcome format: recorded samples per query and procedure, and the true curves they imply.

One JSON object per line::

    {"id": "q17", "prompt": "12 + 30 =",                      # or [{"role": "user", "content": "..."}]
     "outcomes": {"gemma": [{"reward": 1.0, "answer": "42"},   # answer: the sample's normalised final answer
                            {"reward": 0.0, "score": -0.3, "cost": 1.0, "tokens": 12,
                             "input_tokens": 9, "output_tokens": 3}]},
     "cost": {"gemma": 1.0}}                                   # optional cost per call of each procedure

A procedure may also be given in the compact binary form ``{"successes": 3, "samples": 8}``. Best-of-k
data has one procedure with many samples; routing data has two or more procedures. Other top-level keys (an
``answer``, a ``task`` name) are kept in :attr:`OutcomeRecord.meta`; other sample keys (the response ``text``)
are kept in :attr:`ProcedureOutcome.extras`. Both round-trip through :meth:`OutcomeSet.write_jsonl`.

numpy and the standard library only.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from adaptive_router import _outcome_json
from adaptive_router.errors import ConfigError, OutcomeFormatError
from adaptive_router.predictors import FloatArray, IntArray
from adaptive_router.prompts.text import render_prompt

if TYPE_CHECKING:
    from adaptive_router.prices import PriceTable

__all__ = ["OutcomeRecord", "OutcomeSet", "ProcedureOutcome", "render_prompt", "stable_unit_hash"]

Prompt = str | tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class ProcedureOutcome:
    """The recorded samples of one procedure on one query.

    Either ``rewards`` (one per independent sample, with optional per-sample ``scores``, ``costs``,
    ``tokens``, ``input_tokens``, ``output_tokens`` and ``answers``, the normalised final answer or None) or
    the compact binary form ``successes`` out of ``samples``.

    Examples
    --------
    >>> ProcedureOutcome.binary(3, 8).n_samples
    8
    >>> ProcedureOutcome(rewards=(1.0, 0.0, 1.0)).success_count
    2
    """

    rewards: tuple[float, ...] = ()
    scores: tuple[float, ...] | None = None
    costs: tuple[float, ...] | None = None
    tokens: tuple[int, ...] | None = None
    input_tokens: tuple[int, ...] | None = None
    output_tokens: tuple[int, ...] | None = None
    extras: tuple[Mapping[str, Any], ...] | None = None
    compact: tuple[int, int] | None = None
    answers: tuple[str | None, ...] | None = None

    def __post_init__(self) -> None:
        if self.compact is None and not self.rewards:
            raise OutcomeFormatError(
                f"a procedure needs at least one sample; expected {_outcome_json.PROC_SHAPE}"
            )
        if self.compact is not None:
            c, n = self.compact
            if n < 1 or not 0 <= c <= n:
                raise OutcomeFormatError(
                    "compact form needs 0 <= successes <= samples and samples >= 1, "
                    f"got successes={c}, samples={n}"
                )
        for name in ("scores", "costs", "tokens", "input_tokens", "output_tokens", "extras", "answers"):
            values = getattr(self, name)
            if values is not None and len(values) != len(self.rewards):
                raise OutcomeFormatError(f"{name} has {len(values)} entries for {len(self.rewards)} rewards")
        if self.answers is not None and not all(a is None or isinstance(a, str) for a in self.answers):
            bad = next(a for a in self.answers if a is not None and not isinstance(a, str))
            raise OutcomeFormatError(f"answers must be strings or None (no answer), got {bad!r}")

    @classmethod
    def binary(cls, successes: int, samples: int) -> ProcedureOutcome:
        """The compact form: ``successes`` correct out of ``samples`` independent samples."""
        return cls(compact=(int(successes), int(samples)))

    @property
    def is_compact(self) -> bool:
        return self.compact is not None

    @property
    def n_samples(self) -> int:
        return self.compact[1] if self.compact is not None else len(self.rewards)

    @property
    def success_count(self) -> int:
        """Samples with reward >= 0.5 (the compact form's ``successes``)."""
        if self.compact is not None:
            return self.compact[0]
        return sum(r >= 0.5 for r in self.rewards)

    @property
    def is_binary(self) -> bool:
        """True when every reward is 0 or 1 (always for the compact form)."""
        return self.compact is not None or all(r in (0.0, 1.0) for r in self.rewards)

    def reward_array(self) -> FloatArray:
        """Rewards as a float array; the compact form expands to ``successes`` ones then zeros."""
        if self.compact is not None:
            c, n = self.compact
            return np.concatenate([np.ones(c), np.zeros(n - c)])
        return np.asarray(self.rewards, dtype=np.float64)

    def mean_reward(self) -> float:
        if self.compact is not None:
            return self.compact[0] / self.compact[1]
        return float(np.mean(self.rewards))

    @classmethod
    def from_json(cls, value: Any, where: str) -> ProcedureOutcome:
        """Parse one procedure's outcomes; ``where`` names it in errors."""
        fields = _outcome_json.parse_procedure(value, where)
        try:
            return cls(**fields)
        except OutcomeFormatError as exc:
            raise OutcomeFormatError(f"{where}: {exc}") from None

    def to_json(self) -> list[dict[str, Any]] | dict[str, int]:
        return _outcome_json.procedure_to_json(self)


@dataclass(frozen=True)
class OutcomeRecord:
    """One query: its ``id``, ``prompt``, outcomes per procedure, optional cost per call per procedure."""

    id: str
    prompt: Prompt
    outcomes: Mapping[str, ProcedureOutcome]
    cost: Mapping[str, float] | None = None
    meta: Mapping[str, Any] = field(default_factory=dict)
    line: int | None = field(default=None, compare=False)

    @property
    def text(self) -> str:
        """The prompt as one string (see :func:`render_prompt`)."""
        return render_prompt(self.prompt)

    @classmethod
    def from_json(cls, obj: Any, *, line: int | None = None) -> OutcomeRecord:
        """Validate and parse one decoded JSON object; errors carry ``line``."""
        try:
            return cls(**_outcome_json.parse_record(obj, ProcedureOutcome.from_json), line=line)
        except OutcomeFormatError as exc:
            if exc.line is not None:
                raise
            raise OutcomeFormatError(str(exc), line=line) from None

    def to_json(self) -> dict[str, Any]:
        return _outcome_json.record_to_json(self)


class OutcomeSet(Sequence[OutcomeRecord]):
    """A validated collection of outcome records sharing the same procedures.

    Parameters
    ----------
    records : iterable of OutcomeRecord
        Every record must record the same procedures, and ids must be unique.

    Examples
    --------
    >>> recs = [OutcomeRecord(id=str(i), prompt=f"{i} + 1 =", outcomes={"m": ProcedureOutcome.binary(i, 4)})
    ...         for i in range(5)]
    >>> s = OutcomeSet(recs)
    >>> s.procedures, len(s)
    (('m',), 5)
    >>> s.success_counts("m")[0].tolist()
    [0, 1, 2, 3, 4]
    """

    def __init__(self, records: Iterable[OutcomeRecord]) -> None:
        self._records: tuple[OutcomeRecord, ...] = tuple(records)
        self._validate()

    def _validate(self) -> None:
        if not self._records:
            self._procedures: tuple[str, ...] = ()
            return
        first = self._records[0]
        procs = tuple(first.outcomes)
        seen: dict[str, int] = {}
        for i, rec in enumerate(self._records):
            where = rec.line if rec.line is not None else i + 1
            if rec.id in seen:
                raise OutcomeFormatError(
                    f"duplicate id {rec.id!r} (first seen at line {seen[rec.id]})", line=where
                )
            seen[rec.id] = where
            if set(rec.outcomes) != set(procs):
                raise OutcomeFormatError(
                    f"record {rec.id!r} has procedures {sorted(rec.outcomes)} but the first record has "
                    f"{sorted(procs)}; every record must record the same procedures",
                    line=where,
                )
        for p in procs:
            has = [rec.outcomes[p].scores is not None for rec in self._records]
            if any(has) and not all(has):
                i = has.index(False) if has[0] else has.index(True)
                rec = self._records[i]
                raise OutcomeFormatError(
                    f"procedure {p!r}: reranker 'score' is recorded for some queries but not for {rec.id!r}; "
                    "give scores for every query or none",
                    line=rec.line if rec.line is not None else i + 1,
                )
        self._procedures = procs

    # -- sequence protocol -----------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._records)

    def __getitem__(self, index: Any) -> Any:
        if isinstance(index, slice):
            return OutcomeSet(self._records[index])
        return self._records[index]

    def __iter__(self) -> Iterator[OutcomeRecord]:
        return iter(self._records)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, OutcomeSet) and self._records == other._records

    def __repr__(self) -> str:
        return f"OutcomeSet(n={len(self)}, procedures={list(self._procedures)})"

    def subset(self, indices: Iterable[int]) -> OutcomeSet:
        """The records at ``indices``, in that order."""
        return OutcomeSet(self._records[int(i)] for i in indices)

    # -- I/O -------------------------------------------------------------------------------------------------
    @classmethod
    def read_jsonl(cls, path: str | Path) -> OutcomeSet:
        """Read and validate a JSONL outcome file.

        Blank lines are skipped; every other line must be a valid record. All bad lines are collected and the
        first is raised as :class:`OutcomeFormatError` (``.line`` set), listing the others.
        """
        path = Path(path)
        records = _outcome_json.read_jsonl(path, lambda obj, i: OutcomeRecord.from_json(obj, line=i))
        try:
            return cls(records)
        except OutcomeFormatError as exc:
            err = OutcomeFormatError(f"{path}: {exc.args[0]}")
            err.line = exc.line
            raise err from None

    def write_jsonl(self, path: str | Path) -> None:
        """Write the records as JSONL (one object per line, UTF-8)."""
        _outcome_json.write_jsonl(Path(path), (rec.to_json() for rec in self._records))

    @classmethod
    def from_dicts(cls, objs: Iterable[Any]) -> OutcomeSet:
        """Validate decoded JSON objects (as :meth:`read_jsonl` would, numbering them from 1)."""
        return cls(OutcomeRecord.from_json(o, line=i) for i, o in enumerate(objs, start=1))

    # -- views -----------------------------------------------------------------------------------------------
    @property
    def procedures(self) -> tuple[str, ...]:
        """Procedure names, in the order of the first record."""
        return self._procedures

    @property
    def ids(self) -> list[str]:
        return [r.id for r in self._records]

    def texts(self) -> list[str]:
        """Each prompt rendered as one string (see :func:`render_prompt`)."""
        return [r.text for r in self._records]

    @property
    def procedure_costs(self) -> dict[str, float]:
        """Mean cost per call of each procedure over the queries (see :meth:`query_costs`)."""
        return self.mean_costs()

    def mean_costs(self, prices: PriceTable | None = None) -> dict[str, float]:
        """Mean cost per call of each procedure: the mean over queries of :meth:`query_costs`.

        Examples
        --------
        >>> from adaptive_router.prices import PriceTable
        >>> s = OutcomeSet.from_dicts([{"id": "a", "prompt": "x", "outcomes": {"m": [
        ...     {"reward": 1, "input_tokens": 1000, "output_tokens": 200}]}}])
        >>> s.mean_costs(PriceTable({"m": (0.15, 0.60)}))      # 1000 x $0.15/M + 200 x $0.60/M
        {'m': 0.00027}
        """
        return {p: float(np.mean(c)) if c.size else 1.0 for p, c in self.query_costs(prices).items()}

    def query_costs(self, prices: PriceTable | None = None) -> dict[str, FloatArray]:
        """``{proc: (n,)}`` cost per call of each procedure on each query; a recorded cost wins.

        Per query: the record's ``cost[proc]`` if given, else the mean per-sample ``cost``, else (with
        ``prices``, a :class:`~adaptive_router.prices.PriceTable` in dollars per million tokens) the mean
        per-sample price of ``input_tokens`` and ``output_tokens``, else (without ``prices``) 1.0.

        Raises
        ------
        ConfigError
            With ``prices``: a query that records neither a cost nor both token counts for a procedure, or a
            procedure that needs a price the table does not have.
        """
        out = {}
        for p in self._procedures:
            vals = np.ones(len(self._records))
            for i, rec in enumerate(self._records):
                o = rec.outcomes[p]
                if rec.cost is not None and p in rec.cost:
                    vals[i] = rec.cost[p]
                elif o.costs is not None:
                    vals[i] = float(np.mean(o.costs))
                elif prices is not None:
                    vals[i] = _priced(prices, p, rec)
            out[p] = vals
        return out

    def _check_proc(self, proc: str) -> None:
        if proc not in self._procedures:
            raise ConfigError(f"unknown procedure {proc!r}; this outcome set has {list(self._procedures)}")

    def success_counts(self, proc: str) -> tuple[IntArray, IntArray]:
        """``(successes, samples)`` per query; rewards >= 0.5 count as successes."""
        self._check_proc(proc)
        c = np.array([r.outcomes[proc].success_count for r in self._records], dtype=np.int64)
        n = np.array([r.outcomes[proc].n_samples for r in self._records], dtype=np.int64)
        return c, n

    def rewards(self, proc: str) -> FloatArray:
        """``(n, s)`` rewards, NaN-padded for ragged rows (compact records expand to ones and zeros)."""
        self._check_proc(proc)
        rows = [r.outcomes[proc].reward_array() for r in self._records]
        return _pad(rows)

    def scores(self, proc: str) -> FloatArray | None:
        """``(n, s)`` reranker scores, NaN-padded, or None when the procedure has none."""
        self._check_proc(proc)
        if not self._records or self._records[0].outcomes[proc].scores is None:
            return None
        return _pad([np.asarray(r.outcomes[proc].scores, dtype=np.float64) for r in self._records])

    def can_vote(self, proc: str) -> bool:
        """Whether ``proc``'s samples can be voted on: they record answers, or there is at most one per
        query (the vote of one sample is that sample)."""
        return self.answers(proc) is not None or int(self.success_counts(proc)[1].max()) <= 1

    def answers(self, proc: str) -> tuple[IntArray, list[tuple[str, ...]]] | None:
        """Integer-coded final answers of ``proc``: ``(codes, labels)``, or None when no sample has one.

        ``codes`` is ``(n, s)`` int: within each row, ``j`` is the row's ``j``-th distinct answer in order of
        first appearance, so ``labels[i][codes[i, j]]`` is the answer string; ``-1`` marks padding and samples
        recorded without an ``answer``. This is the input of
        :func:`~adaptive_router.curves.expected_majority_vote`.

        Examples
        --------
        >>> s = OutcomeSet.from_dicts([{"id": "a", "prompt": "1 + 1 =", "outcomes": {"m": [
        ...     {"reward": 1, "answer": "2"}, {"reward": 0, "answer": "3"}, {"reward": 1, "answer": "2"},
        ...     {"reward": 0}]}}])
        >>> codes, labels = s.answers("m")
        >>> codes.tolist(), labels
        ([[0, 1, 0, -1]], [('2', '3')])
        """
        self._check_proc(proc)
        if not any(r.outcomes[proc].answers is not None for r in self._records):
            return None
        width = max(r.outcomes[proc].n_samples for r in self._records)
        codes = np.full((len(self._records), width), -1, dtype=np.int64)
        labels: list[tuple[str, ...]] = []
        for i, rec in enumerate(self._records):
            seen: dict[str, int] = {}
            for j, answer in enumerate(rec.outcomes[proc].answers or ()):
                if answer is not None:
                    codes[i, j] = seen.setdefault(answer, len(seen))
            labels.append(tuple(seen))
        return codes, labels

    def is_binary(self, proc: str) -> bool:
        """True when every recorded reward of ``proc`` is 0 or 1."""
        self._check_proc(proc)
        return all(r.outcomes[proc].is_binary for r in self._records)

    def mean_rewards(self, proc: str) -> FloatArray:
        """``(n,)`` mean recorded reward per query (single-sample expected reward)."""
        self._check_proc(proc)
        return np.array([r.outcomes[proc].mean_reward() for r in self._records], dtype=np.float64)

    def true_curves(self, max_k: int, *, reranker: str | None = None) -> dict[str, FloatArray]:
        """``{proc: (n, max_k)}``: expected reward with k = 1..max_k samples of each procedure.

        ``reranker`` says how the best of ``k`` is chosen. ``None`` (default): reranked best-of-k when
        reranker scores are recorded, pass@k for binary rewards, expected best-of-k otherwise.
        ``"verifier"``: the best reward (pass@k / expected best-of-k, scores ignored); ``"vote"``: majority
        vote over the recorded ``answer`` fields (:func:`~adaptive_router.curves.expected_majority_vote`; a
        procedure with one sample per query and no answers: its reward, the vote of one sample);
        ``"score"``: the best recorded score (:func:`~adaptive_router.curves.expected_reranked_best_of_k`).
        All are unbiased estimators from :mod:`adaptive_router.curves`.

        Raises
        ------
        ConfigError
            An unknown reranker, or one whose inputs (answers, scores) a procedure did not record.
        """
        if isinstance(max_k, bool) or not isinstance(max_k, int | np.integer) or max_k < 1:
            raise ConfigError(f"max_k must be a positive integer, got {max_k!r}")
        from adaptive_router import curves

        if reranker not in (None, "verifier", "vote", "score"):
            raise ConfigError(f"reranker={reranker!r}; choose 'verifier', 'vote', 'score' or None")
        ks = np.arange(1, int(max_k) + 1)
        out = {}
        for p in self._procedures:
            reranker_p: str | None = reranker
            if reranker == "vote" and self.answers(p) is None and self.can_vote(p):
                reranker_p = "verifier"  # a vote of one sample is that sample: its reward
            if reranker_p == "vote":
                coded = self.answers(p)
                if coded is None:
                    raise ConfigError(
                        f"reranker 'vote' needs each sample's 'answer', but procedure {p!r} records none; "
                        "label with a verifier that extracts answers (or --final-answer), or use 'verifier'"
                    )
                out[p] = np.asarray(curves.expected_majority_vote(coded[0], self.rewards(p), ks), dtype=float)
                continue
            scores = None if reranker_p == "verifier" else self.scores(p)
            if reranker_p == "score" and scores is None:
                raise ConfigError(
                    f"reranker 'score' needs each sample's 'score', but procedure {p!r} records none; "
                    "label with --reward-model, or use 'verifier'"
                )
            if scores is not None:
                curve = curves.expected_reranked_best_of_k(self.rewards(p), scores, ks)
                out[p] = np.asarray(curve, dtype=float)
            elif self.is_binary(p):
                c, n = self.success_counts(p)
                out[p] = np.asarray(curves.pass_at_k(c, n, ks), dtype=float)
            else:
                out[p] = np.asarray(curves.expected_best_of_k(self.rewards(p), ks), dtype=float)
        return out

    def split(self, test_fraction: float, seed: int = 0) -> tuple[OutcomeSet, OutcomeSet]:
        """``(train, test)`` by a stable hash of ``seed`` and ``id``: an id always lands on the same side.

        Raises ConfigError when ``test_fraction`` is outside (0, 1) or one side would be empty.
        """
        if not 0.0 < float(test_fraction) < 1.0:
            raise ConfigError(f"test_fraction must be in (0, 1), got {test_fraction!r}")
        train: list[OutcomeRecord] = []
        test: list[OutcomeRecord] = []
        for rec in self._records:
            (test if stable_unit_hash(rec.id, seed) < test_fraction else train).append(rec)
        if not train or not test:
            raise ConfigError(
                f"split of {len(self)} records with test_fraction={test_fraction} left "
                f"{len(train)} train / {len(test)} test records; use more records or another fraction"
            )
        return OutcomeSet(train), OutcomeSet(test)


def stable_unit_hash(key: str, seed: int = 0) -> float:
    """A number in [0, 1) from sha256 of ``seed`` and ``key``: stable across runs and machines."""
    digest = hashlib.sha256(f"{int(seed)}:{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


def _priced(prices: PriceTable, proc: str, rec: OutcomeRecord) -> float:
    """Mean dollars per call of ``proc`` on ``rec`` from its samples' token counts."""
    o = rec.outcomes[proc]
    if o.input_tokens is None or o.output_tokens is None:
        have = "only 'tokens' (a total)" if o.tokens is not None else "no token counts"
        raise ConfigError(
            f"query {rec.id!r}, procedure {proc!r}: no recorded 'cost' and {have}; pricing a call needs each "
            "sample's 'input_tokens' and 'output_tokens' (or record its 'cost', or give --costs)"
        )
    if proc not in prices:
        raise ConfigError(
            f"the price table has no price for procedure {proc!r} (it has {sorted(prices)}); add "
            f"[models.{proc}] with input and output dollars per million tokens"
        )
    pairs = zip(o.input_tokens, o.output_tokens, strict=True)
    return float(np.mean([prices.cost(proc, i, j) for i, j in pairs]))


def _pad(rows: list[FloatArray]) -> FloatArray:
    width = max((len(r) for r in rows), default=0)
    out = np.full((len(rows), width), np.nan)
    for i, r in enumerate(rows):
        out[i, : len(r)] = r
    return out
