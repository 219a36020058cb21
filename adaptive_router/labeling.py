"""Label a dataset: sample N responses per query from a backend, score them, append outcome records.

:func:`label_tasks` writes one JSONL outcome record per query (see :mod:`adaptive_router.outcomes`) as soon
as all its samples are scored, so a crash loses at most the queries in flight: run it again with the same
output file and it skips the ids already there (a half-written last line is cut off first).

Backends are callables ``prompt -> Sample``. :class:`OpenAICompatibleBackend` talks to any OpenAI-compatible
server (llama.cpp's, vLLM, OpenAI) over HTTP with retries; tests and custom code can pass a plain function.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from adaptive_router.errors import (
    BackendError,
    BackendUnavailableError,
    ConfigError,
    OutcomeFormatError,
    RetryExhaustedError,
)
from adaptive_router.outcomes import OutcomeRecord
from adaptive_router.tasks import Task

__all__ = ["LabelSummary", "OpenAICompatibleBackend", "Sample", "completed_ids", "label_tasks"]


@dataclass(frozen=True)
class Sample:
    """One sampled response: its text and the completion tokens it used (0 when unknown)."""

    text: str
    tokens: int = 0


@dataclass
class LabelSummary:
    """What :func:`label_tasks` did."""

    written: int = 0
    skipped: int = 0
    failed: list[str] = field(default_factory=list)
    calls: int = 0
    seconds: float = 0.0


class OpenAICompatibleBackend:
    """Sample from an OpenAI-compatible server (``/v1/completions`` or ``/v1/chat/completions``).

    Parameters
    ----------
    base_url : str
        Server root including ``/v1``, e.g. ``http://127.0.0.1:8080/v1``.
    model : str
        Model name sent in each request.
    mode : {"completions", "chat"}
        Raw text completion (base models, few-shot prompts) or chat.
    temperature, max_tokens, stop
        Sampling settings; ``stop`` ends a completion (``"\\n"`` for one-line answers).
    extra : dict, optional
        More request fields, e.g. llama.cpp's ``{"top_k": 0, "min_p": 0.0, "repeat_penalty": 1.0}``.
    api_key : str, optional
        Sent as a bearer token.
    retries : int
        Attempts per request on connection errors, timeouts, 429 and 5xx (exponential backoff).
    timeout : float
        Seconds per request.
    sleep : callable
        Injected for tests.
    client : httpx.Client, optional
        Injected transport (tests pass one built on ``httpx.MockTransport``); paths are relative to it.
    """

    def __init__(
        self,
        *,
        base_url: str,
        model: str,
        mode: str = "completions",
        temperature: float = 1.0,
        max_tokens: int = 64,
        stop: Sequence[str] | None = None,
        extra: dict[str, Any] | None = None,
        api_key: str | None = None,
        retries: int = 4,
        timeout: float = 120.0,
        sleep: Callable[[float], None] = time.sleep,
        client: Any = None,
    ) -> None:
        self.base_url = base_url
        self.model = model
        self.mode = mode
        self.temperature = temperature
        self.max_tokens = max_tokens
        self.stop = stop
        self.extra = extra
        self.api_key = api_key
        self.retries = retries
        self.timeout = timeout
        self.sleep = sleep
        if mode not in ("completions", "chat"):
            raise ConfigError(f"mode must be 'completions' or 'chat', got {mode!r}")
        if int(retries) < 1:
            raise ConfigError(f"retries must be >= 1, got {retries!r}")
        self.client = client
        self._client: Any = client

    def __repr__(self) -> str:
        return (
            f"OpenAICompatibleBackend(base_url={self.base_url!r}, model={self.model!r}, mode={self.mode!r})"
        )

    def _request(self, prompt: str | list[dict[str, str]]) -> tuple[str, dict[str, Any]]:
        body: dict[str, Any] = {
            "model": self.model,
            "temperature": self.temperature,
            "max_tokens": self.max_tokens,
            **(self.extra or {}),
        }
        if self.stop:
            body["stop"] = list(self.stop)
        if self.mode == "chat":
            msgs = [{"role": "user", "content": prompt}] if isinstance(prompt, str) else prompt
            return "/chat/completions", {**body, "messages": msgs}
        if not isinstance(prompt, str):
            prompt = "\n".join(m["content"] for m in prompt)
        return "/completions", {**body, "prompt": prompt}

    def __call__(self, prompt: str | list[dict[str, str]]) -> Sample:
        import httpx

        if self._client is None:
            headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
            root = self.base_url.rstrip("/")
            self._client = httpx.Client(base_url=root, timeout=self.timeout, headers=headers)
        path, body = self._request(prompt)
        last: str = ""
        connect_failures = 0
        for attempt in range(1, int(self.retries) + 1):
            try:
                resp = self._client.post(path, json=body)
            except (httpx.ConnectError, httpx.TimeoutException, httpx.RemoteProtocolError) as exc:
                last = f"{type(exc).__name__}: {exc}"
                connect_failures += isinstance(exc, httpx.ConnectError)
            else:
                if resp.status_code == 200:
                    return _parse_choice(resp.json(), self.mode)
                last = f"HTTP {resp.status_code}: {resp.text[:200]}"
                if resp.status_code not in (408, 409, 429) and resp.status_code < 500:
                    raise BackendError(f"{self.base_url}{path} rejected the request: {last}")
            if attempt < int(self.retries):
                self.sleep(min(2.0 ** (attempt - 1), 30.0))
        if connect_failures == int(self.retries):
            msg = f"nothing answers at {self.base_url} ({last}); is the server running?"
            raise BackendUnavailableError(msg)
        raise RetryExhaustedError(f"{self.base_url}{path} kept failing: {last}", attempts=int(self.retries))


def _parse_choice(payload: dict[str, Any], mode: str) -> Sample:
    try:
        choice = payload["choices"][0]
        text = choice["message"]["content"] if mode == "chat" else choice["text"]
    except (KeyError, IndexError, TypeError):
        raise BackendError(f"unexpected response shape: {json.dumps(payload)[:200]}") from None
    tokens = int((payload.get("usage") or {}).get("completion_tokens", 0) or 0)
    return Sample(text=text or "", tokens=tokens)


def completed_ids(path: str | Path) -> set[str]:
    """Ids already labelled in ``path``; a half-written last line (a crash mid-write) is cut off.

    Raises OutcomeFormatError for a malformed line anywhere else: nothing is dropped silently.
    """
    path = Path(path)
    if not path.exists():
        return set()
    data = path.read_bytes()
    if data and not data.endswith(b"\n"):
        cut = data.rfind(b"\n") + 1
        try:
            json.loads(data[cut:])
        except json.JSONDecodeError:
            with path.open("r+b") as fh:
                fh.truncate(cut)
            data = data[:cut]
        else:
            with path.open("ab") as fh:
                fh.write(b"\n")
    ids = set()
    for lineno, raw in enumerate(data.decode("utf-8").splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            ids.add(OutcomeRecord.from_json(json.loads(raw), line=lineno).id)
        except json.JSONDecodeError as exc:
            msg = f"{path}: invalid JSON ({exc.msg}); fix or remove the line"
            raise OutcomeFormatError(msg, line=lineno) from None
    return ids


def label_tasks(
    tasks: Sequence[Task],
    backend: Callable[[Any], Sample | str],
    out: str | Path,
    *,
    samples: int,
    procedure: str = "default",
    cost: float | None = None,
    concurrency: int = 4,
    keep_text: bool = True,
    progress: Callable[[int, int], None] | None = None,
) -> LabelSummary:
    """Sample ``samples`` responses per task, score them, append one outcome record per task to ``out``.

    Parameters
    ----------
    tasks : sequence of Task
    backend : callable
        ``prompt -> Sample`` (or str); raising marks the task failed (it is retried on the next run).
    out : path
        JSONL outcome file; ids already in it are skipped.
    samples : int
        Independent samples per task.
    procedure : str
        Procedure name recorded in ``outcomes``.
    cost : float, optional
        Cost per call recorded in the record's ``cost``.
    concurrency : int
        Requests in flight at once.
    keep_text : bool
        Record each response's text beside its reward.
    progress : callable, optional
        Called as ``progress(done_tasks, total_tasks)``.
    """
    if int(samples) < 1:
        raise ConfigError(f"samples must be >= 1, got {samples!r}")
    if int(concurrency) < 1:
        raise ConfigError(f"concurrency must be >= 1, got {concurrency!r}")
    ids = [t.id for t in tasks]
    if len(set(ids)) != len(ids):
        raise ConfigError("task ids must be unique")
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    done = completed_ids(out)
    todo = [t for t in tasks if t.id not in done]
    summary = LabelSummary(skipped=len(tasks) - len(todo))
    start = time.monotonic()
    if progress:
        progress(summary.skipped, len(tasks))
    results: dict[str, list[Sample | None]] = {t.id: [None] * int(samples) for t in todo}
    remaining = {t.id: int(samples) for t in todo}
    by_id = {t.id: t for t in todo}
    with ThreadPoolExecutor(max_workers=int(concurrency)) as pool, out.open("a", encoding="utf-8") as fh:
        futures = {pool.submit(backend, t.prompt): (t.id, j) for t in todo for j in range(int(samples))}
        for fut in as_completed(futures):
            tid, j = futures[fut]
            summary.calls += 1
            if tid not in remaining:
                continue  # the task already failed
            try:
                got = fut.result()
            except Exception as exc:
                remaining.pop(tid)
                summary.failed.append(f"{tid}: {exc}")
                _cancel(futures, tid)
                continue
            results[tid][j] = got if isinstance(got, Sample) else Sample(text=str(got))
            remaining[tid] -= 1
            if remaining[tid] == 0:
                remaining.pop(tid)
                fh.write(json.dumps(_record(by_id[tid], results.pop(tid), procedure, cost, keep_text)) + "\n")
                fh.flush()
                summary.written += 1
                if progress:
                    progress(summary.skipped + summary.written + len(summary.failed), len(tasks))
    summary.seconds = time.monotonic() - start
    return summary


def _cancel(futures: dict[Any, tuple[str, int]], tid: str) -> None:
    for fut, (other, _) in futures.items():
        if other == tid:
            fut.cancel()


def _record(
    task: Task, samples: Iterable[Sample | None], procedure: str, cost: float | None, keep_text: bool
) -> dict[str, Any]:
    outs = []
    for s in samples:
        if s is None:  # pragma: no cover - every slot is filled before the record is written
            raise BackendError(f"task {task.id!r} has a missing sample")
        item: dict[str, Any] = {"reward": task.score(s.text)}
        if s.tokens:
            item["tokens"] = s.tokens
        if keep_text:
            item["text"] = s.text
        outs.append(item)
    rec: dict[str, Any] = {"id": task.id, "prompt": task.prompt, "outcomes": {procedure: outs}}
    if cost is not None:
        rec["cost"] = {procedure: float(cost)}
    rec["answer"] = task.answer
    rec["verifier"] = task.verifier
    if task.metadata:
        rec["metadata"] = dict(task.metadata)
    return rec
