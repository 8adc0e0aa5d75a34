"""Run an adapter in a persistent child process, so that nothing it does can take the
suite down with it.

Used for adapters a user brings (``--adapter FILE.py:NAME``, entry points), for built-in
adapters with ``--isolate``, and for frameworks that fix global state at import (Keras 3
reads KERAS_BACKEND once, keras/src/backend/config.py). ``Proxy`` looks like an adapter to
the suite: its metadata (name, framework, convention, version, devices, capabilities) comes
from the child once, and ``supports``/``run`` are forwarded to it.

Guarantees:
  * The child is started with the 'spawn' method and its environment set before it imports
    anything; it leads its own session and process group (``os.setsid``), so a Ctrl-C in
    the terminal reaches the suite, not the child, and every process the adapter starts is
    killed with it (``os.killpg``) after a crash, a timeout, an interrupt or at exit.
  * Every call has a time limit; a child that dies is noticed at once (its sentinel), even
    when a grandchild still holds its pipe: ``WorkerCrashed`` / ``WorkerTimeout``.
  * A result larger than the call's byte limit is refused without being read into memory
    (``WorkerOversize``), and the child is restarted.
  * The child's stdout and stderr go to a file that is emptied after every call; the last
    ``OUTPUT_TAIL`` bytes of each call's output are kept (``last_output``).
  * A child whose resident memory grows past BN_WORKER_MAX_RSS_MB is restarted after its call.
"""
from __future__ import annotations

import atexit
import importlib
import multiprocessing as mp
import os
import pickle
import signal
import tempfile
import threading
import time
import traceback
import weakref
from multiprocessing.connection import wait

_START_LOCK = threading.Lock()   # os.environ is process-wide: set it around start() only
_LIVE: "weakref.WeakSet[Proxy]" = weakref.WeakSet()
OUTPUT_TAIL = 8192
DEFAULT_MAX_BYTES = 256 << 20


class WorkerError(RuntimeError):
    """The child raised, died, timed out or answered too much."""


class WorkerCrashed(WorkerError):
    """The child process died (segfault, abort, os._exit, out of memory)."""


class WorkerTimeout(WorkerError):
    """The child did not answer within the per-call time limit; it was killed."""


class WorkerOversize(WorkerError):
    """The child's answer exceeded the call's byte limit; it was refused unread."""


class WorkerBadAnswer(WorkerError):
    """The child answered something the suite does not accept (an object that could not be
    sent, or one whose unpickling would import or call code in this process); refused."""


class RemoteError(WorkerError):
    """The adapter raised in the child; the message is its exception."""

    def __init__(self, kind: str, message: str, tb: str = ""):
        super().__init__(f"{kind}: {message}")
        self.kind, self.message, self.tb = kind, message, tb


def _remote(value) -> WorkerError:
    """The error an "error" answer describes (a child that speaks the protocol wrongly is a WorkerError)."""
    if isinstance(value, tuple) and len(value) == 3 and all(isinstance(v, str) for v in value):
        return RemoteError(*value)
    return WorkerError(f"malformed error answer from the worker: {str(value)[:200]!r}")


def _rss_mb(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return 0.0


# What an answer may be made of: plain data (pickle's own types), NumPy arrays, dtypes and
# scalars, and the extra floating-point types of ml_dtypes. Anything else in an answer would
# make ``pickle.loads`` import a module or call a function in this process (an adapter's
# module, ``os.system``): it is refused unread (``WorkerBadAnswer``).
_ANSWER_GLOBALS = {
    ("builtins", "complex"), ("builtins", "set"), ("builtins", "frozenset"), ("builtins", "bytearray"),
    ("numpy", "ndarray"), ("numpy", "dtype"),
    ("numpy._core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "scalar"),
    ("numpy._core.numeric", "_frombuffer"),
    ("numpy.core.multiarray", "_reconstruct"), ("numpy.core.multiarray", "scalar"),
    ("numpy.core.numeric", "_frombuffer"),
}


class _AnswerUnpickler(pickle.Unpickler):
    def find_class(self, module, name):
        if (module, name) in _ANSWER_GLOBALS or (module == "ml_dtypes" and name.replace("_", "").isalnum()
                                                 and (name.startswith("float") or name.startswith("bfloat"))):
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"answer holds {module}.{name}, which is not plain data or a NumPy array")


def loads_answer(data: bytes):
    """``pickle.loads`` limited to plain data and NumPy arrays (never imports or calls other code)."""
    import io
    return _AnswerUnpickler(io.BytesIO(data)).load()


def _text(exc: BaseException, limit: int = 20000) -> str:
    """str(exc), bounded, even when the exception's __str__ raises."""
    try:
        text = str(exc)
    except BaseException:  # noqa: BLE001 -- a hostile __str__
        text = f"<{type(exc).__name__} whose str() raised>"
    return text if len(text) <= limit else text[:limit] + f" [... {len(text) - limit} characters cut]"


def _error(exc: BaseException) -> tuple:
    try:
        tb = traceback.format_exc(limit=20)
    except BaseException:  # noqa: BLE001
        tb = ""
    return (type(exc).__name__, _text(exc), tb[-20000:])


def _make(target: str, kwargs: dict):
    module, _, attr = target.partition(":")
    return getattr(importlib.import_module(module), attr)(**kwargs)


def _reply(conn, status: str, value) -> None:
    try:
        data = pickle.dumps((status, value), protocol=pickle.HIGHEST_PROTOCOL)
    except Exception as exc:  # noqa: BLE001 -- an unpicklable result is the adapter's fault
        data = pickle.dumps(("bad", f"the answer could not be sent: {type(exc).__name__}: {_text(exc, 2000)}"))
    conn.send_bytes(data)


def _die_with_parent() -> None:
    """Linux: the kernel kills this worker when the suite's process dies, even by SIGKILL
    (prctl PR_SET_PDEATHSIG), so no hanging worker outlives the run. Elsewhere: nothing."""
    try:
        import ctypes
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)   # PR_SET_PDEATHSIG = 1
    except (OSError, AttributeError):
        pass


def _serve(conn, target: str, kwargs: dict, env: dict, capture: str | None) -> None:
    try:
        os.setsid()            # own session and process group: killpg reaches every descendant
    except OSError:
        pass
    _die_with_parent()
    if capture:
        fd = os.open(capture, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        os.close(fd)
    os.environ.update(env)
    try:
        adapter = _make(target, kwargs)
    except BaseException as exc:  # noqa: BLE001 -- reported to the parent
        _reply(conn, "error", _error(exc))
        return
    _reply(conn, "ok", None)
    while True:
        try:
            msg = conn.recv()
        except (EOFError, OSError):
            return
        if msg is None:
            return
        method, args = msg
        try:
            value = getattr(adapter, method)(*args) if method != "__meta__" else _meta(adapter)
            _reply(conn, "ok", value)
        except Exception as exc:  # noqa: BLE001 -- reported to the parent
            _reply(conn, "error", _error(exc))


def _meta(adapter) -> dict:
    """What the parent needs to know about the adapter, asked once."""
    from .protocol import CAPABILITIES
    out = {}
    for key in ("name", "framework", "convention"):
        out[key] = getattr(adapter, key, None)
    out["version"] = adapter.version()
    devices = adapter.devices()
    out["devices"] = devices
    out["capabilities"] = getattr(adapter, "capabilities", CAPABILITIES)
    out["default"] = getattr(adapter, "default", True)
    out["family"] = getattr(adapter, "family", None)
    namer = getattr(adapter, "device_name", None)
    names = {}
    if callable(namer) and isinstance(devices, list):
        for d in devices:
            try:                      # a readable name is optional: one that fails is the device's own
                names[str(d)] = str(namer(d))[:200]
            except Exception:  # noqa: BLE001
                names[str(d)] = str(d)
    out["device_names"] = names
    return out


@atexit.register
def _kill_all() -> None:
    """At exit, before multiprocessing's own handler (atexit is last-in, first-out) joins
    its children: kill every worker's process group, whatever signals it ignores."""
    for p in list(_LIVE):
        p.kill()
        p._drop_capture()


class Proxy:
    """An adapter whose calls happen in a child process.

    target      "module:callable" building the real adapter in the child (with kwargs)
    env         environment for the child, set before it imports the framework
    local       optional adapter-like object in this process that answers ``supports``
                (pure logic, no framework import), so skips do not start a child
    meta        optional metadata known without asking the child (built-in adapters)
    """

    def __init__(self, name: str, target: str, kwargs: dict | None = None, env: dict | None = None,
                 local=None, timeout_s: float | None = None, start_timeout_s: float | None = None,
                 max_rss_mb: float | None = None, meta: dict | None = None):
        self.name = name
        self._target, self._kwargs, self._env, self._local = target, dict(kwargs or {}), dict(env or {}), local
        self._timeout = timeout_s if timeout_s is not None else float(os.environ.get("BN_WORKER_TIMEOUT", "600"))
        self._start_timeout = start_timeout_s if start_timeout_s is not None else max(self._timeout, 300.0)
        self._proc = self._conn = None
        self._lock = threading.Lock()
        self._max_rss = max_rss_mb if max_rss_mb is not None else float(os.environ.get("BN_WORKER_MAX_RSS_MB", "8192"))
        self._meta = dict(meta or {})
        self._capture = None
        self.restarts = 0          # worker restarts of every cause (crash, timeout, memory, oversize)
        self.last_output = ""
        _LIVE.add(self)

    # -- metadata ------------------------------------------------------------------------------
    def meta(self) -> dict:
        if "version" not in self._meta or "devices" not in self._meta:
            self._meta = self._call("__meta__") | {k: v for k, v in self._meta.items() if v is not None}
        return self._meta

    def __getattr__(self, key):
        if key.startswith("_"):
            raise AttributeError(key)
        if key in ("framework", "convention", "capabilities", "default", "family"):
            return self.meta().get(key)
        raise AttributeError(key)

    # -- adapter protocol ----------------------------------------------------------------------
    def version(self) -> str:
        return self.meta()["version"]

    def devices(self) -> list[str]:
        return self.meta()["devices"]

    def device_name(self, device: str) -> str:
        return str(self.meta().get("device_names", {}).get(device, device))

    def supports(self, problem, device: str):
        if self._local is not None:
            return self._local.supports(problem, device)
        return self._call("supports", problem, device)

    def run(self, problem, device: str, max_bytes: int | None = None):
        return self._call("run", problem, device, max_bytes=max_bytes)

    def close(self) -> None:
        with self._lock:
            self._stop()
            self._drop_capture()

    def _drop_capture(self) -> None:
        path, self._capture = self._capture, None
        if path:
            try:
                os.unlink(path)
            except OSError:
                pass

    def kill(self) -> None:
        """Kill the child's process group now (no lock: usable from signal handlers and atexit)."""
        proc = self._proc
        if proc is not None and proc.pid:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except OSError:
                pass
            try:
                proc.kill()
            except (OSError, ValueError, AttributeError):
                pass

    # -- child management ----------------------------------------------------------------------
    def _start(self) -> None:
        ctx = mp.get_context("spawn")
        parent, child = ctx.Pipe()
        if self._capture is None:
            fd, self._capture = tempfile.mkstemp(prefix="bn-worker-", suffix=".out")
            os.close(fd)
        proc = ctx.Process(target=_serve, args=(child, self._target, self._kwargs, self._env, self._capture),
                           name=f"bn-worker-{self.name}", daemon=False)
        with _START_LOCK:
            saved = {k: os.environ.get(k) for k in self._env}
            os.environ.update(self._env)
            try:
                proc.start()
            finally:
                for k, v in saved.items():
                    if v is None:
                        os.environ.pop(k, None)
                    else:
                        os.environ[k] = v
        child.close()
        self._proc, self._conn = proc, parent
        answer = self._receive(self._start_timeout, "starting", DEFAULT_MAX_BYTES)
        status, value = answer if isinstance(answer, tuple) and len(answer) == 2 else ("bad", "malformed answer")
        if status != "ok":
            self._stop()
            if status == "bad":
                raise WorkerBadAnswer(f"worker {self.name} starting: {value}")
            raise _remote(value)

    def _stop(self, graceful: bool = True) -> None:
        if self._proc is not None:
            if graceful:
                try:
                    self._conn.send(None)
                except (OSError, ValueError):
                    pass
                self._proc.join(timeout=2)
            self.kill()
            self._proc.join(timeout=5)
            try:
                self._conn.close()
            except OSError:
                pass
        self._proc = self._conn = None

    def _tail(self) -> str:
        """The output the child printed since the last call (bounded), and empty the file."""
        path = self._capture
        if not path:
            return ""
        try:
            size = os.path.getsize(path)
            with open(path, "rb") as fh:
                fh.seek(max(0, size - OUTPUT_TAIL))
                data = fh.read(OUTPUT_TAIL)
            os.truncate(path, 0)
        except OSError:
            return ""
        text = data.decode("utf-8", "replace")
        return (f"[... {size - OUTPUT_TAIL} bytes cut ...]\n" + text) if size > OUTPUT_TAIL else text

    def _wait(self, timeout: float) -> list:
        """[conn] once an answer (or EOF) is readable, [sentinel] once the child is dead, [] on
        timeout. The sentinel alone misses a child whose forked grandchild still holds the
        sentinel's (and the pipe's) write end, so the child's exit status is polled as well."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            ready = wait([self._conn, self._proc.sentinel], max(0.0, min(left, 0.25)))
            if self._conn in ready:
                return [self._conn]
            if ready or self._proc.exitcode is not None:       # exitcode: waitpid(WNOHANG)
                return [self._conn] if self._conn.poll(0) else [self._proc.sentinel]
            if left <= 0:
                return []

    def _receive(self, timeout: float, what: str, max_bytes: int):
        ready = self._wait(timeout)
        pid = self._proc.pid
        if not ready:
            self._stop(graceful=False)
            self.restarts += 1
            raise WorkerTimeout(f"worker {self.name} (pid {pid}) timed out after {timeout:.0f}s {what}; killed")
        if self._conn not in ready:          # the child exited without answering
            self._proc.join(timeout=5)
            code = self._proc.exitcode
            self._stop(graceful=False)
            self.restarts += 1
            raise WorkerCrashed(f"worker {self.name} died {what} (exit code {code})")
        try:
            data = self._conn.recv_bytes(max_bytes)
        except OSError as exc:               # message longer than max_bytes (left unread)
            self._stop(graceful=False)
            self.restarts += 1
            if "too long" in str(exc) or "bad message length" in str(exc):
                raise WorkerOversize(f"worker {self.name} answered more than {max_bytes} bytes {what}; "
                                     "refused unread, worker restarted") from None
            raise WorkerCrashed(f"worker {self.name} died {what} ({exc})") from None
        except EOFError:
            self._proc.join(timeout=5)
            code = self._proc.exitcode
            self._stop(graceful=False)
            self.restarts += 1
            raise WorkerCrashed(f"worker {self.name} died {what} (exit code {code})") from None
        try:
            return loads_answer(data)
        except pickle.UnpicklingError as exc:
            if "not plain data" in str(exc):    # refused before anything was built: the worker stays
                return "bad", f"refused: {exc}"
            self._stop(graceful=False)
            self.restarts += 1
            raise WorkerError(f"worker {self.name} sent an unreadable answer {what}: {type(exc).__name__}: {exc}")
        except Exception as exc:  # noqa: BLE001 -- garbage from the child
            self._stop(graceful=False)
            self.restarts += 1
            raise WorkerError(f"worker {self.name} sent an unreadable answer {what}: {type(exc).__name__}: {exc}")

    def _call(self, method: str, *args, max_bytes: int | None = None):
        with self._lock:
            if self._proc is None or not self._proc.is_alive():
                if self._proc is not None:
                    self._stop(graceful=False)
                try:
                    self._start()
                except BaseException:
                    self.last_output = self._tail()      # what a child that failed to start printed
                    raise
            try:
                self._conn.send((method, args))
            except (OSError, ValueError) as exc:
                self._stop(graceful=False)
                self.restarts += 1
                raise WorkerCrashed(f"worker {self.name} unreachable: {exc}") from None
            try:
                answer = self._receive(self._timeout, f"in {method}", max_bytes or DEFAULT_MAX_BYTES)
                if not (isinstance(answer, tuple) and len(answer) == 2 and answer[0] in ("ok", "error", "bad")):
                    self._stop(graceful=False)
                    self.restarts += 1
                    raise WorkerError(f"worker {self.name} broke the protocol in {method}: {str(answer)[:200]!r}")
                status, value = answer
            finally:
                self.last_output = self._tail()
            if self._proc is not None and _rss_mb(self._proc.pid) > self._max_rss:
                self._stop()      # a leaking adapter is restarted, the case it finished still counts
                self.restarts += 1
        if status == "bad":
            raise WorkerBadAnswer(f"worker {self.name} answered {method}() with something the suite does not "
                                  f"accept: {value}")
        if status != "ok":
            raise _remote(value)
        return value

    def __del__(self):
        try:
            self.kill()
            self._drop_capture()
        except Exception:  # noqa: BLE001 -- best effort at interpreter shutdown
            pass
