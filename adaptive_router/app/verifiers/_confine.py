"""Kernel-level confinement of the sandbox server and its children (Linux; each step is best effort).

The server, once, at start (:func:`confine_server`):

- leaves the network: ``unshare(CLONE_NEWNET)`` (with ``CLONE_NEWUSER`` when not root), so only a loopback
  device that is down is left;
- as root, also leaves the host's mounts (``CLONE_NEWNS``): every mount is made read-only
  (``mount_setattr(AT_RECURSIVE, MOUNT_ATTR_RDONLY)``) and a fresh ``nosuid,nodev,noexec`` tmpfs is mounted
  over the job folder, the only place a job can write; it vanishes with the server.

Each child, before it touches untrusted input (:func:`drop_privileges`): drops to ``nobody`` when that user
can read the interpreter, else (still uid 0) drops every capability, so it cannot remount, raise its hard
limits, create device nodes or ptrace; ``PR_SET_NO_NEW_PRIVS`` in both cases.
"""

from __future__ import annotations

import ctypes
import os
import sys
import sysconfig
from typing import Any

__all__ = ["NOBODY", "confine_server", "drop_privileges"]

NOBODY = 65534
_CLONE_NEWNS, _CLONE_NEWUSER, _CLONE_NEWNET = 0x00020000, 0x10000000, 0x40000000
_MS_NOSUID, _MS_NODEV, _MS_NOEXEC, _MS_REC, _MS_PRIVATE = 0x2, 0x4, 0x8, 0x4000, 0x40000
_AT_FDCWD, _AT_RECURSIVE, _MOUNT_ATTR_RDONLY, _SYS_MOUNT_SETATTR = -100, 0x8000, 0x1, 442
_PR_SET_NO_NEW_PRIVS, _PR_CAPBSET_DROP, _LINUX_CAPABILITY_VERSION_3 = 38, 24, 0x20080522


class _MountAttr(ctypes.Structure):
    _fields_ = [(n, ctypes.c_uint64) for n in ("attr_set", "attr_clr", "propagation", "userns_fd")]


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [(n, ctypes.c_uint32) for n in ("effective", "permitted", "inheritable")]


def _libc() -> Any:
    return ctypes.CDLL(None, use_errno=True)


def _read_only_mounts(libc: Any, writable: str) -> bool:
    """In a fresh mount namespace: everything read-only, then a tmpfs over ``writable``."""
    if libc.unshare(_CLONE_NEWNS) != 0:
        return False
    if libc.mount(None, b"/", None, _MS_REC | _MS_PRIVATE, None) != 0:  # nothing propagates to the host
        return False
    attr = _MountAttr(attr_set=_MOUNT_ATTR_RDONLY)
    rc = libc.syscall(
        _SYS_MOUNT_SETATTR, _AT_FDCWD, b"/", _AT_RECURSIVE, ctypes.byref(attr), ctypes.sizeof(attr)
    )
    if rc != 0:
        return False
    flags = _MS_NOSUID | _MS_NODEV | _MS_NOEXEC
    return bool(libc.mount(b"tmpfs", os.fsencode(writable), b"tmpfs", flags, b"size=2g,mode=0711") == 0)


def _nobody_can_read_python() -> bool:
    """Whether ``nobody`` could import from this interpreter (it cannot when it lives under ``/root``)."""
    paths = {sysconfig.get_paths()[k] for k in ("stdlib", "platstdlib", "purelib", "platlib")}
    paths.add(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
    pid = os.fork()
    if pid == 0:  # pragma: no cover - a throwaway child that tries
        code = 1
        try:
            os.setgroups([])
            os.setgid(NOBODY)
            os.setuid(NOBODY)
            for path in paths:
                os.listdir(path)
            with open(os.__file__, "rb"):
                code = 0
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    return os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0


def confine_server(writable: str) -> dict[str, bool]:
    """Confine the server process (see the module docstring); say what took effect.

    ``writable`` is the (empty) folder the jobs' folders go in; it stays writable.
    """
    info = {"network_isolated": False, "filesystem_read_only": False, "drops_to_nobody": False}
    if not sys.platform.startswith("linux"):
        return info
    try:
        libc = _libc()
        libc.mount.argtypes = [ctypes.c_char_p] * 3 + [ctypes.c_ulong, ctypes.c_char_p]
        root = os.geteuid() == 0
        info["drops_to_nobody"] = root and _nobody_can_read_python()
        info["network_isolated"] = (
            libc.unshare(_CLONE_NEWNET if root else _CLONE_NEWUSER | _CLONE_NEWNET) == 0
        )
        info["filesystem_read_only"] = root and _read_only_mounts(libc, writable)
    except (OSError, AttributeError):
        pass
    return info


def drop_privileges(to_nobody: bool) -> None:
    """In a child: become ``nobody``, or stay uid 0 without any capability; no new privileges either way."""
    if to_nobody:
        os.setgroups([])
        os.setgid(NOBODY)
        os.setuid(NOBODY)  # a uid-0 -> non-zero switch also clears every capability
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = _libc()
        libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)
        if os.geteuid() == 0:
            for cap in range(64):
                libc.prctl(_PR_CAPBSET_DROP, cap, 0, 0, 0)  # fails past the last capability: harmless
            header = _CapHeader(version=_LINUX_CAPABILITY_VERSION_3, pid=0)
            libc.capset(ctypes.byref(header), (_CapData * 2)())
    except (OSError, AttributeError):
        pass
