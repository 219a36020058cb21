"""A tiny OpenAI-compatible completions server on 127.0.0.1 for CLI tests run in a subprocess.

It answers ``POST /v1/completions`` (and ``/v1/chat/completions``) with the sum asked for by the prompt's
last line (``"12 + 30 ="`` -> ``" 42"``), after ``latency`` seconds, and records when each request started
and the body it sent.
"""

from __future__ import annotations

import json
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

_SUM = re.compile(r"(\d+)\s*([+\-*])\s*(\d+)\s*=\s*$")


def _answer(prompt: str) -> str:
    found = _SUM.search(prompt.strip().splitlines()[-1] if prompt.strip() else "")
    if not found:
        return " 0"
    a, op, b = int(found.group(1)), found.group(2), int(found.group(3))
    return f" {a + b if op == '+' else a - b if op == '-' else a * b}"


class FakeOpenAIServer:
    """``with FakeOpenAIServer(latency=0.1) as server: ... server.base_url, server.starts, server.bodies``."""

    def __init__(self, latency: float = 0.0) -> None:
        self.latency = latency
        self.starts: list[float] = []
        self.bodies: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
                with outer._lock:
                    outer.starts.append(time.monotonic())
                    outer.bodies.append(body)
                time.sleep(outer.latency)
                prompt = body.get("prompt") or body.get("messages", [{}])[-1].get("content", "")
                text = _answer(str(prompt))
                usage = {"prompt_tokens": 4, "completion_tokens": 2, "total_tokens": 6}
                if self.path.endswith("/chat/completions"):
                    choice: dict[str, Any] = {
                        "index": 0,
                        "message": {"role": "assistant", "content": text},
                        "finish_reason": "stop",
                    }
                    reply = {"object": "chat.completion", "choices": [choice]}
                else:
                    choice = {"index": 0, "text": text, "finish_reason": "stop", "logprobs": None}
                    reply = {"object": "text_completion", "choices": [choice]}
                reply.update(id="x", created=0, model=body.get("model", "m"), usage=usage)
                data = json.dumps(reply).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}/v1"

    @property
    def count(self) -> int:
        with self._lock:
            return len(self.starts)

    def __enter__(self) -> FakeOpenAIServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
