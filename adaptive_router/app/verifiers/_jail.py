"""The sandbox's server side: a fork server that runs every job in a fresh, limited child process.

:class:`~adaptive_router.app.verifiers.sandbox.Sandbox` starts ``python -I -c "...; serve()"`` with a scrubbed
environment and talks to it over its stdin/stdout, one JSON object per line. The server only runs trusted
code (it imports each job's target module, which stays loaded, so a fork is warm); the untrusted text is
handled only in a child forked per job, which before calling the target:

1. starts its own session (so the whole process group can be killed) and points fds 0-2 at ``/dev/null``,
   closing every other descriptor but the result pipe (it cannot write to the protocol);
2. moves into a fresh temporary folder (its ``HOME`` and ``TMPDIR``), with a minimal environment;
3. sets ``RLIMIT_CPU``, ``RLIMIT_AS`` (headroom above the warm server), ``RLIMIT_NOFILE``, ``RLIMIT_FSIZE``
   and ``RLIMIT_CORE`` = 0;
4. drops privileges (:func:`~adaptive_router.app.verifiers._confine.drop_privileges`): ``nobody``, or no
   capabilities at all, so it can neither raise those limits nor remount nor signal other users' processes;
5. installs an audit hook (:func:`_audit_hook`) that refuses socket connects and binds, process spawning
   and signalling, ``ctypes`` calls, raising limits, and file writes outside its folder.

The server itself has left the network and, as root, made every mount read-only but the jobs' tmpfs
(:func:`~adaptive_router.app.verifiers._confine.confine_server`), where the kernel allows it; it enforces the
wall-clock limit by killing the child's process group.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import resource
import select
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any, BinaryIO

from adaptive_router.app.verifiers._confine import NOBODY, confine_server, drop_privileges

__all__ = ["serve"]

_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_TRUNC

# audit events refused outright: spawning, signalling, raw C calls, raising limits, network
_REFUSED = frozenset(
    {
        "os.exec",
        "os.fork",
        "os.forkpty",
        "os.kill",
        "os.killpg",
        "os.posix_spawn",
        "os.spawn",
        "os.system",
        "signal.pthread_kill",
        "subprocess.Popen",
        "ctypes.call_function",
        "ctypes.dlopen",
        "ctypes.dlsym",
        "resource.prlimit",
        "resource.setrlimit",
        "socket.bind",
        "socket.connect",
        "socket.getaddrinfo",
        "socket.gethostbyname",
        "socket.sendmsg",
        "socket.sendto",
    }
)
# audit events that change the file system: the argument positions holding paths
_PATH_EVENTS = {
    "os.chmod": (0,),
    "os.chown": (0,),
    "os.link": (0, 1),
    "os.mkdir": (0,),
    "os.remove": (0,),
    "os.rename": (0, 1),
    "os.rmdir": (0,),
    "os.symlink": (1,),
    "os.truncate": (0,),
    "os.utime": (0,),
    "shutil.rmtree": (0,),
}


def _audit_hook(root: str) -> Callable[[str, tuple[Any, ...]], None]:
    """An audit hook that refuses the events above, and file writes outside ``root``."""
    root = os.path.realpath(root)

    def inside(path: Any) -> bool:
        if isinstance(path, int):  # an open descriptor: only /dev/null and the result pipe are open
            return True
        try:
            real = os.path.realpath(os.fsdecode(path))
        except (TypeError, ValueError):
            return False
        return real == os.devnull or real == root or real.startswith(root + os.sep)

    def hook(event: str, args: tuple[Any, ...]) -> None:
        if event in _REFUSED:
            raise PermissionError(f"sandbox: {event} is not allowed")
        if event == "open":
            path, mode, flags = (*args, None, None, None)[:3]
            writes = bool((flags or 0) & _WRITE_FLAGS) or any(c in str(mode or "") for c in "wax+")
            if writes and not inside(path):
                raise PermissionError(f"sandbox: writing {path!r} is not allowed (only inside {root})")
        elif event in _PATH_EVENTS:
            for i in _PATH_EVENTS[event]:
                if i < len(args) and not inside(args[i]):
                    raise PermissionError(f"sandbox: {event} on {args[i]!r} is not allowed")

    return hook


def _vm_bytes() -> int:
    """This process's virtual memory size (the child's RLIMIT_AS is headroom above it)."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("VmSize:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def _resolve(target: str, cache: dict[str, Callable[..., Any]]) -> Callable[..., Any]:
    if target not in cache:
        module, _, name = target.partition(":")
        cache[target] = getattr(importlib.import_module(module), name)
    return cache[target]


def _child(
    fn: Callable[..., Any], args: list[Any], limits: dict[str, Any], workdir: str, out: int, nobody: bool
) -> None:
    """Runs in the forked child: confine the process, call ``fn(*args)``, write the result, exit."""
    os.setsid()
    os.dup2(out, 3)
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)
    os.closerange(4, resource.getrlimit(resource.RLIMIT_NOFILE)[0])
    os.chdir(workdir)
    os.environ.clear()
    os.environ.update(HOME=workdir, TMPDIR=workdir, PATH="/usr/bin:/bin", LANG="C.UTF-8")
    tempfile.tempdir = workdir
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # an oversized write fails (EFBIG) instead of killing
    cpu = max(1, int(-(-float(limits["cpu_seconds"]) // 1)))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
    resource.setrlimit(resource.RLIMIT_FSIZE, (int(limits["max_file_bytes"]),) * 2)
    resource.setrlimit(resource.RLIMIT_NOFILE, (int(limits["max_open_files"]),) * 2)
    resource.setrlimit(resource.RLIMIT_AS, (_vm_bytes() + int(limits["memory_bytes"]),) * 2)
    drop_privileges(to_nobody=nobody)
    sys.dont_write_bytecode = True
    sys.addaudithook(_audit_hook(workdir))
    try:
        payload: dict[str, Any] = {"ok": fn(*args)}
        data = json.dumps(payload).encode()
    except BaseException as exc:  # the job's own failure (a bad reply): reported, never raised
        data = json.dumps({"error": f"{type(exc).__name__}: {str(exc)[:500]}"}).encode()
    while data:
        data = data[os.write(3, data) :]
    os._exit(0)


class _Running:
    """One forked child: its pid, result pipe, folder, deadline and what it has sent so far."""

    def __init__(
        self, index: int, job: dict[str, Any], base: str, fn: Callable[..., Any], nobody: bool
    ) -> None:
        self.index, self.limits = index, job["limits"]
        self.workdir = tempfile.mkdtemp(dir=base)
        if nobody:
            os.chown(self.workdir, NOBODY, NOBODY)
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child; its work is observed through the pipe
            try:
                os.close(read)
                _child(fn, list(job["args"]), self.limits, self.workdir, write, nobody)
            finally:
                os._exit(70)
        os.close(write)
        self.pid, self.fd = pid, read
        self.deadline = time.monotonic() + float(self.limits["wall_seconds"])
        self.chunks: list[bytes] = []
        self.size = 0

    def read(self) -> bool:
        """Read what is there; True at EOF."""
        chunk = os.read(self.fd, 65536)
        self.size += len(chunk)
        if chunk and self.size <= int(self.limits["max_result_bytes"]):
            self.chunks.append(chunk)
        return not chunk

    def finish(self, timed_out: bool) -> dict[str, Any]:
        """Kill the child's process group, reap it, remove its folder and interpret what it sent."""
        os.close(self.fd)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signal.SIGKILL)
        _, status = os.waitpid(self.pid, 0)
        shutil.rmtree(self.workdir, ignore_errors=True)
        limits = self.limits
        if timed_out:
            return {"killed": f"wall-clock limit ({limits['wall_seconds']:g} s)"}
        try:
            too_big = self.size > int(limits["max_result_bytes"])
            reply = json.loads(b"".join(self.chunks)) if self.chunks and not too_big else None
        except ValueError:
            reply = None
        if too_big:
            return {"killed": f"result over {limits['max_result_bytes']} bytes"}
        if isinstance(reply, dict) and set(reply) in ({"ok"}, {"error"}):
            return reply
        if os.WIFSIGNALED(status):
            sig = os.WTERMSIG(status)
            if sig in (signal.SIGXCPU, signal.SIGKILL):
                return {"killed": f"CPU limit ({limits['cpu_seconds']:g} s)"}
            return {"killed": f"signal {signal.Signals(sig).name}"}
        return {"killed": f"exit status {os.WEXITSTATUS(status)} without a result"}


def _run_batch(
    jobs: list[dict[str, Any]],
    base: str,
    cache: dict[str, Callable[..., Any]],
    parallel: int,
    nobody: bool = False,
) -> list[dict[str, Any]]:
    """Run ``jobs``, up to ``parallel`` children at a time; one reply per job, in order."""
    replies: list[dict[str, Any] | None] = [None] * len(jobs)
    pending = list(enumerate(jobs))[::-1]
    running: dict[int, _Running] = {}
    while pending or running:
        while pending and len(running) < parallel:
            i, job = pending.pop()
            try:
                fn = _resolve(str(job["target"]), cache)
            except Exception as exc:  # our own target is missing: a setup problem, not the reply's fault
                replies[i] = {"setup_error": f"{type(exc).__name__}: {exc}"}
                continue
            child = _Running(i, job, base, fn, nobody)
            running[child.fd] = child
        if not running:
            continue
        left = min(c.deadline for c in running.values()) - time.monotonic()
        ready, _, _ = select.select(list(running), [], [], max(left, 0.0))
        for fd in ready:
            if running[fd].read():
                child = running.pop(fd)
                replies[child.index] = child.finish(timed_out=False)
        now = time.monotonic()
        for fd in [fd for fd, c in running.items() if c.deadline <= now]:
            child = running.pop(fd)
            replies[child.index] = child.finish(timed_out=True)
    return [r if r is not None else {"killed": "not run"} for r in replies]


def _send(out: BinaryIO, obj: dict[str, Any]) -> None:
    out.write(json.dumps(obj).encode() + b"\n")
    out.flush()


def serve() -> None:  # pragma: no cover - runs in the sandbox server process
    """Answer requests from stdin until EOF, one reply line each.

    ``{"batch": [{"target", "args", "limits"}, ...], "parallel": n}`` -> ``{"results": [...]}``, each
    ``{"ok": value}``, ``{"error": message}``, ``{"killed": reason}`` or ``{"setup_error": message}``;
    ``{"prepare": target, "args": [...]}`` (trusted setup, run in the server) -> ``{"ok": true}`` or
    ``{"setup_error": message}``.
    """
    proto_in, proto_out = sys.stdin.buffer, sys.stdout.buffer
    os.dup2(os.open(os.devnull, os.O_WRONLY), 2)
    # a memory file system where there is one: a folder per job costs microseconds there, not milliseconds
    shm = "/dev/shm" if os.access("/dev/shm", os.W_OK) else None
    base = tempfile.mkdtemp(prefix="adaptive-router-sandbox-", dir=shm)
    os.chmod(base, 0o711)
    info = confine_server(base)
    # libraries that want a writable home or cache (matplotlib, via reasoning-gym) get the job tmpfs
    for name in ("HOME", "TMPDIR", "MPLCONFIGDIR", "XDG_CACHE_HOME", "XDG_CONFIG_HOME"):
        os.environ[name] = base
    tempfile.tempdir = base
    cache: dict[str, Callable[..., Any]] = {}
    _send(proto_out, {"ready": True, "base": base, **info})
    nobody = info["drops_to_nobody"]
    try:
        for line in proto_in:
            job = json.loads(line)
            if "batch" in job:
                parallel = max(1, int(job.get("parallel", 1)))
                results = _run_batch(list(job["batch"]), base, cache, parallel, nobody)
                _send(proto_out, {"results": results})
                continue
            if "prepare" in job:  # trusted setup, run here so that every child inherits it
                try:
                    _resolve(str(job["prepare"]), cache)(*job.get("args", ()))
                    _send(proto_out, {"ok": True})
                except Exception as exc:
                    _send(proto_out, {"setup_error": f"{type(exc).__name__}: {exc}"})
                continue
    finally:
        shutil.rmtree(base, ignore_errors=True)
