"""Serve the embedded Gemma-3-270M behind the routing server, and talk to it with the official openai client.

Everything stays on 127.0.0.1: llama.cpp serves the model, the routing server (FastAPI + uvicorn, in a
background thread) sits in front of it with a best-of-4 router (majority vote over the last number of
each sample, 2 units per query), and the ``openai`` client asks it a few few-shot sums: once plainly,
once with a lower budget in the model name, once streamed, once with a wrong key. It prints the answers,
the decision each one carries (procedure, k, cost) and a few lines of ``/metrics``.

Run: ``python examples/serve_local_model.py [--probe runs/probe]`` (a probe from ``adaptive-router train``;
without one the plan is uniform, and the router's rounds, reading the first samples' votes before buying
more, still give agreeing queries fewer samples). The same server from the command line::

    adaptive-router serve --config router.toml        # or: python -m adaptive_router.server --config ...

with the TOML below in ``router.toml``.
"""

from __future__ import annotations

import argparse
import os
import secrets

import httpx
import openai

from adaptive_router.server.backends import EmbeddedServers
from adaptive_router.server.config import parse_config
from adaptive_router.server.serve import ServerThread

CONFIG = """
[server]
max_tokens = 4
request_timeout_s = 300

[auth]
keys_env = "EXAMPLE_ROUTER_KEYS"

[budgets]
per_key = 200              # units this key may spend; reserved before each request, settled after

[backends.gemma]
type = "llama"             # the embedded GGUF, served by llama.cpp on 127.0.0.1
model = "gemma"            # base model: the completions endpoint, few-shot prompts continue as written
temperature = 0.8
stop = ["\\n"]
deadline_s = 240
timeout_s = 240

[routers.adaptive]
backend = "gemma"
budget_per_query = 2
max_k = 4
{probe}
[routers.adaptive.reranker]
type = "majority"
extract = "last_number"
"""

FEW_SHOT = "2 + 3 = 5\n4 + 1 = 5\n6 + 2 = 8\n{a} + {b} ="


def main(probe: str | None) -> None:
    key = "demo:" + secrets.token_urlsafe(24)
    os.environ["EXAMPLE_ROUTER_KEYS"] = key
    config = parse_config(CONFIG.format(probe=f'probe = "{probe}"' if probe else ""), source="example")
    with EmbeddedServers(config) as embedded, ServerThread(config, upstreams=embedded.upstreams) as server:
        client = openai.OpenAI(
            base_url=server.base_url, api_key=key.split(":", 1)[1], max_retries=0, timeout=300
        )
        print("models:", [m.id for m in client.models.list().data])

        for a, b, model in [(3, 4, "adaptive"), (41, 27, "adaptive"), (5, 2, "adaptive:budget=1")]:
            raw = client.chat.completions.with_raw_response.create(
                model=model, messages=[{"role": "user", "content": FEW_SHOT.format(a=a, b=b)}]
            )
            reply = raw.parse()
            decision = reply.model_extra["adaptive_router"]
            print(
                f"{a} + {b} = {reply.choices[0].message.content.strip()!r:6}  model={model:18} "
                f"k={decision['k']} cost={decision['cost']:g} calls={decision['calls']} "
                f"tokens={reply.usage.total_tokens} key_remaining={decision['key_remaining']:g} "
                f"(header x-adaptive-router-k: {raw.headers['x-adaptive-router-k']})"
            )

        pieces, decision = [], None
        stream = client.chat.completions.create(
            model="adaptive:budget=1",
            messages=[{"role": "user", "content": FEW_SHOT.format(a=6, b=3)}],
            stream=True,
        )
        for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                pieces.append(chunk.choices[0].delta.content)
            decision = (chunk.model_extra or {}).get("adaptive_router", decision)
        print(f"streamed 6 + 3 = {''.join(pieces).strip()!r}, k={decision['k'] if decision else None}")

        try:
            openai.OpenAI(
                base_url=server.base_url, api_key="sk-wrong-key-0123456789", max_retries=0
            ).models.list()
        except openai.AuthenticationError as exc:
            print("a wrong key:", exc.status_code, exc.body["message"] if isinstance(exc.body, dict) else exc)

        metrics = httpx.get(
            server.url + "/metrics", headers={"Authorization": f"Bearer {key.split(':', 1)[1]}"}
        )
        wanted = ("adaptive_router_k_total", "adaptive_router_spend_units_total", "adaptive_router_key_spent")
        print("\n".join(line for line in metrics.text.splitlines() if line.startswith(wanted)))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--probe", help="a probe folder from `adaptive-router train` (default: uniform)")
    main(parser.parse_args().probe)
