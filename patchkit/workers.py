"""A helper process: the import's C-heavy work, beside the calling thread, not under its GIL.

CPython runs the Python code of one thread at a time. Inflating, hashing and compressing
release the GIL while they run in C, but a thread doing them takes the GIL back after
each call, and while another thread of the same process runs Python (the tar reader, the
tree) it waits for it: up to the switch interval (5 ms) a call, whatever the call took
(CPython's convoy effect). Measured, the three threads of an import got almost no
parallelism on two cores: wall time equal to CPU time (docs/import-benchmark.md).

A `Worker` is a second interpreter, with a GIL of its own. Its *services* (the layer
inflater of `images/stream.py`, the pack writer of `git/pack.py`) run there, each on a
thread of its own, and talk to the calling process through pipes given to them when
they start; the calling process keeps the Python work alone (tar headers, the tree, the
layer cache). Their threads share the helper's GIL with each other, but neither holds it
for long: both spend their time in C.

A service is a function ``service(args, fds)`` of a module of patchkit, started by
`Worker.start` with JSON arguments and the file descriptors it works on (sent over the
control socket, ``SCM_RIGHTS``). It owns those descriptors and closes them when done; it
reports through them (its own framing), never through this module.

Lifetime: the helper exits once its control socket is closed (`Worker.close`, or the
calling process ending in any way, a SIGKILL included) and its services have ended; a
service ends when its pipes do (end of file, or EPIPE once the other side is gone), so a
killed import leaves no helper behind. The helper ignores SIGINT: an interrupt is the
calling process's to handle (it stops the services by closing their pipes).

The helper runs the modules of its services and what they import, not the packages'
``__init__`` modules (patchkit's and patchkit.images' import most of the library): a
helper is then ~8 MB of private memory and starts in ~40 ms.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import struct
import subprocess
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from patchkit.errors import HelperError

__all__ = ["Worker", "pipe"]

_MAX_FDS = 8  # descriptors one request may carry
_LEN = struct.Struct("<I")
_PIPE_SIZE = 1 << 20  # what the pipes to and from services hold (Linux; elsewhere the system's)
_START_TIMEOUT = 30.0  # seconds `close` waits for the helper to end before killing it

# The helper's entry: which directories hold patchkit's packages (given by the calling
# process, so that both run the same files), then the request loop.
_BOOT = """\
import sys, json, types
paths, packages, ctl = json.loads(sys.argv[1])
sys.path[:] = paths
for name, path in packages:
    module = types.ModuleType(name)
    module.__path__ = [path]
    sys.modules[name] = module
from patchkit.workers import serve
serve(ctl)
"""


def pipe() -> tuple[int, int]:
    """A new pipe (read end, write end) holding `_PIPE_SIZE` bytes where the system lets
    it (Linux's F_SETPIPE_SZ): fewer wake-ups of either side."""
    r, w = os.pipe()
    setsize = getattr(fcntl, "F_SETPIPE_SZ", None)
    if setsize is not None:
        with contextlib.suppress(OSError):
            fcntl.fcntl(w, setsize, _PIPE_SIZE)
    return r, w


def _packages() -> list[tuple[str, str]]:
    """Every package of patchkit (dotted name, directory), parents first."""
    root = Path(__file__).resolve().parent
    out = [("patchkit", str(root))]
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(("_", ".")))
        if "__init__.py" in filenames and Path(dirpath) != root:
            rel = Path(dirpath).relative_to(root)
            out.append((".".join(("patchkit", *rel.parts)), dirpath))
    return out


class Worker:
    """The helper process of one import (or any caller that wants one): `start` runs a
    service there; `close` ends the helper once its services have ended."""

    def __init__(self) -> None:
        mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        boot = json.dumps([sys.path, _packages(), theirs.fileno()])
        try:
            self._proc = subprocess.Popen(
                [sys.executable, "-I", "-S", "-c", _BOOT, boot],
                pass_fds=(theirs.fileno(),),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        except OSError as e:
            mine.close()
            raise HelperError(f"cannot start the helper process: {e}") from e
        finally:
            theirs.close()
        self._sock = mine
        self._lock = threading.Lock()
        self.pid = self._proc.pid

    def start(self, target: str, args: dict[str, Any], fds: Sequence[int]) -> None:
        """Run ``target`` (``"module:function"``) on a new thread of the helper, with
        ``args`` (JSON) and ``fds`` (sent, so they are the helper's too: close yours
        when the service should see the end of them)."""
        if len(fds) > _MAX_FDS:
            raise ValueError(f"at most {_MAX_FDS} descriptors a request")
        body = json.dumps({"target": target, "args": args}).encode()
        with self._lock:
            try:
                socket.send_fds(self._sock, [_LEN.pack(len(body)) + body], list(fds))
            except OSError as e:
                raise HelperError(f"the helper process is gone ({self.describe()})") from e

    def describe(self) -> str:
        """How the helper is: running, or how it ended."""
        code = self._proc.poll()
        if code is None:
            return "still running"
        return f"killed by signal {-code}" if code < 0 else f"exit status {code}"

    def alive(self) -> bool:
        return self._proc.poll() is None

    def close(self) -> None:
        """End the helper: it exits once the services still running have ended (their
        pipes closed); killed if it has not after a while."""
        with contextlib.suppress(OSError):
            self._sock.close()
        try:
            self._proc.wait(timeout=_START_TIMEOUT)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()

    def kill(self) -> None:
        """End the helper now (its services with it)."""
        with contextlib.suppress(OSError):
            self._sock.close()
        with contextlib.suppress(OSError):
            self._proc.kill()
        self._proc.wait()

    def __enter__(self) -> Worker:
        return self

    def __exit__(self, *exc: object) -> None:
        if exc[0] is None:
            self.close()
        else:
            self.kill()


# -- the helper process -----------------------------------------------------------------


def _recv_exactly(sock: socket.socket, n: int) -> bytes:
    out = b""
    while len(out) < n:
        data = sock.recv(n - len(out))
        if not data:
            raise EOFError
        out += data
    return out


def _run(request: dict[str, Any], fds: list[int]) -> None:
    import importlib

    try:
        module, _, name = str(request["target"]).partition(":")
        getattr(importlib.import_module(module), name)(request["args"], fds)
    except BaseException:
        # A service reports its errors itself; what escapes it ends it: closing its
        # descriptors tells the calling process (end of file, EPIPE).
        for fd in fds:
            with contextlib.suppress(OSError):
                os.close(fd)


def serve(ctl: int) -> None:
    """The helper's main loop: start each request's service on a thread of its own; at
    the end of the control socket, wait for the services, then exit."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    sock = socket.socket(fileno=ctl)
    threads: list[threading.Thread] = []
    while True:
        try:
            head, fds, _, _ = socket.recv_fds(sock, _LEN.size, _MAX_FDS)
            if not head:
                break
            head += _recv_exactly(sock, _LEN.size - len(head))
            request = json.loads(_recv_exactly(sock, _LEN.unpack(head)[0]))
        except (EOFError, OSError, ValueError):
            break
        thread = threading.Thread(target=_run, args=(request, fds), daemon=True)
        thread.start()
        threads = [t for t in threads if t.is_alive()] + [thread]
    for thread in threads:
        thread.join()
    sys.stdout.flush()
    os._exit(0)
