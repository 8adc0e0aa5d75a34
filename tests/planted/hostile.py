"""Hostile and broken backends: adapters that raise, exit, hang, lie about themselves,
answer garbage, carry code in their text, or abuse the process they run in. The suite must
turn every one of them into a verdict (or a load error that fails the run), lose no
finished case record, and execute nothing an adapter hands it.

Side effects are observable through files in ``$BN_HOSTILE_DIR`` (set by the tests for the
suite's subprocess only; without it the module does nothing at import):

  imported.<pid>    this module was imported by process <pid> (import-time code ran there)
  PWNED*            written by a payload: must never appear
  child.<pid>       a process an adapter started (its pid), to check it is gone afterwards
"""
from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import time

import numpy as np

from tests.planted.backends import NumpyBN

HOSTILE_DIR = os.environ.get("BN_HOSTILE_DIR")
if HOSTILE_DIR:                                    # import-time code: must run in workers only
    with open(os.path.join(HOSTILE_DIR, f"imported.{os.getpid()}"), "w") as _fh:
        _fh.write(str(os.getpid()))

# Text that is code in Python (after a newline or a carriage return) and in a shell.
PY_PAYLOAD = "\n__import__('os').system('touch PWNED_py')\r__import__('os').system('touch PWNED_cr')"
SH_PAYLOAD = "'; touch PWNED_sh; echo '$(touch PWNED_subst)`touch PWNED_tick`"
MARKUP = "<script>document.title='PWNED'</script><b>bold</b>{{ 7+7 }}"


def _mark(name: str, text: str = "") -> None:
    if HOSTILE_DIR:
        with open(os.path.join(HOSTILE_DIR, name), "w") as fh:
            fh.write(text)


def _calls(tag: str) -> int:
    """How many times ``tag`` was called in this process before (a per-process counter)."""
    n = _COUNTS.get(tag, 0)
    _COUNTS[tag] = n + 1
    return n


_COUNTS: dict = {}


class Clean(NumpyBN):
    name = "hostile.clean"


# -- construction and metadata ---------------------------------------------------------------------

class InitRaises(NumpyBN):
    name = "hostile.init_raises"

    def __init__(self):
        raise RuntimeError("constructor exploded" + PY_PAYLOAD)


class InitExits(NumpyBN):
    name = "hostile.init_exits"

    def __init__(self):
        os._exit(0)


class InitHangs(NumpyBN):
    name = "hostile.init_hangs"

    def __init__(self):
        time.sleep(3600)


class VersionRaises(NumpyBN):
    name = "hostile.version_raises"

    def version(self):
        raise RuntimeError("no version" + PY_PAYLOAD)


class VersionNotText(NumpyBN):
    name = "hostile.version_int"

    def version(self):
        return 42


class VersionCode(NumpyBN):
    """A version string that is Python after its newline."""
    name = "hostile.version_code"

    def version(self):
        return "1.0" + PY_PAYLOAD


class FrameworkCode(NumpyBN):
    name = "torch.hostile_framework"
    framework = "torch" + PY_PAYLOAD


class DevicesString(NumpyBN):
    name = "hostile.devices_str"

    def devices(self):
        return "cpu"


class DevicesUnknown(NumpyBN):
    name = "hostile.devices_unknown"

    def devices(self):
        return ["cpu", "quantum"]


class DevicesRaises(NumpyBN):
    name = "hostile.devices_raises"

    def devices(self):
        raise OSError("no devices")


class UnknownConvention(NumpyBN):
    name = "hostile.convention"
    convention = "no-such-preset"


class ShadowsBuiltin(NumpyBN):
    name = "torch.nn"


class NameNotText(NumpyBN):
    name = 42


class NameCode(NumpyBN):
    name = "hostile.name\n__import__('os').system('touch PWNED_name')"


class NameShell(NumpyBN):
    """A printable name full of shell syntax: it must reach rerun lines quoted."""
    name = "hostile.sh" + SH_PAYLOAD


class NameMarkup(NumpyBN):
    name = "hostile." + MARKUP


class CapabilitiesBad(NumpyBN):
    name = "hostile.caps"
    capabilities = ("grad",)


class CapsPropertyRaises(NumpyBN):
    name = "hostile.caps_raises"

    @property
    def capabilities(self):
        raise RuntimeError("capabilities property exploded")


class DeviceNameRaises(NumpyBN):
    name = "hostile.device_name_raises"

    def device_name(self, device):
        raise RuntimeError("no readable name")


class EvilStr(str):
    """A str subclass defined here: unpickling it in the main process would import this module."""


class NameStrSubclass(NumpyBN):
    name = EvilStr("hostile.evil_str")


class InferenceOnly(NumpyBN):
    """An inference runtime: no gradients, and it says so."""
    name = "hostile.inference_only"
    capabilities = ("forward", "running_stats")

    def run(self, pb, device):
        out = super().run(pb, device)
        for k in ("dx", "dgamma", "dbeta"):
            out.pop(k, None)
        return out


# -- supports ---------------------------------------------------------------------------------------

class SupportsRaises(NumpyBN):
    name = "hostile.supports_raises"

    def supports(self, pb, device):
        raise RuntimeError("supports exploded" + PY_PAYLOAD)


class SupportsOdd(NumpyBN):
    name = "hostile.supports_odd"

    def supports(self, pb, device):
        return 42


class SupportsMarkup(NumpyBN):
    name = "hostile.supports_markup"

    def supports(self, pb, device):
        return "cannot: " + MARKUP + PY_PAYLOAD


class SupportsDies(NumpyBN):
    name = "hostile.supports_dies"

    def supports(self, pb, device):
        os._exit(7)


# -- outputs ----------------------------------------------------------------------------------------

class _Out(NumpyBN):
    """Replace one output of the honest answer by ``bad(out)``."""
    key = "y"

    def bad(self, out):
        raise NotImplementedError

    def run(self, pb, device):
        out = super().run(pb, device)
        return self.bad(out)


def _variant(name, bad, key="y"):
    return type(name, (_Out,), {"name": f"hostile.out_{name}", "key": key,
                                "bad": lambda self, out: {**out, key: bad(out[key])}})


ComplexOut = _variant("complex", lambda a: a + 5j)
StringOut = _variant("string", lambda a: a.astype(str))
BytesOut = _variant("bytes", lambda a: a.astype("S32"))
ObjectOut = _variant("object", lambda a: a.astype(object))
IntOut = _variant("int", lambda a: np.rint(a).astype(np.int64))
BoolOut = _variant("bool", lambda a: a > 0)
ScalarOut = _variant("scalar", lambda a: 1.0)
ScalarStats = _variant("scalar_stats", lambda a: np.float64(0.0), key="running_mean")
NoneOut = _variant("none", lambda a: None)
StrValue = _variant("str_value", lambda a: "1.0")
DatetimeOut = _variant("datetime", lambda a: np.zeros(a.shape, "datetime64[s]"))


class WrongLayout(_Out):
    """dx in the other layout (channels moved), same number of values."""
    name = "hostile.out_layout"

    def bad(self, out):
        out["dx"] = np.moveaxis(out["dx"], -1, 2)
        return out


class UnknownKey(_Out):
    name = "hostile.out_key"

    def bad(self, out):
        out["__import__('os').system('touch PWNED_key')"] = out["y"]
        return out


class NotDict(_Out):
    name = "hostile.out_list"

    def bad(self, out):
        return [out["y"]]


class Unpicklable(_Out):
    name = "hostile.out_unpicklable"

    def bad(self, out):
        out["y"] = lambda: 0
        return out


class _Payload:
    """Unpickling this runs a shell command: the main process must refuse it unread."""

    def __reduce__(self):
        return (os.system, (f"touch {os.path.join(HOSTILE_DIR or '.', 'PWNED_pickle')}",))


class PickleBomb(_Out):
    name = "hostile.out_pickle"

    def bad(self, out):
        out["y"] = _Payload()
        return out


class _Local(np.ndarray):
    """An ndarray subclass defined in this module: unpickling imports the module."""


class ModuleClass(_Out):
    name = "hostile.out_subclass"

    def bad(self, out):
        out["y"] = out["y"].view(_Local)
        return out


class Huge(_Out):
    """An answer far beyond a case's outputs (pages never touched until pickled)."""
    name = "hostile.out_huge"
    nbytes = int(os.environ.get("BN_HOSTILE_HUGE_MB", "160")) << 20

    def bad(self, out):
        out["y"] = np.zeros(self.nbytes // 8)
        return out


class HugeMessage(NumpyBN):
    """An exception message of 3 MB: the case record must stay readable."""
    name = "hostile.huge_message"

    def run(self, pb, device):
        raise RuntimeError("x" * (3 << 20))


class BadStr(Exception):
    def __str__(self):
        raise RuntimeError("str() of this exception raises")


class RaisesBadStr(NumpyBN):
    name = "hostile.bad_str"

    def run(self, pb, device):
        raise BadStr()


class RaisesCode(NumpyBN):
    """An exception whose message is Python after its newline; named like a built-in family
    so that the report uses that family's reproducer template."""
    name = "torch.hostile_raises"

    def run(self, pb, device):
        raise RuntimeError("backend exploded" + PY_PAYLOAD + "\n" + MARKUP)


class Fails(NumpyBN):
    """Wrong values (y off by one): every case fails, so its rerun lines are printed."""
    name = "hostile.fails"

    def run(self, pb, device):
        out = super().run(pb, device)
        out["y"] = out["y"] + 1.0
        return out


class FailsShell(Fails):
    """Fails, with shell syntax in its name, framework and version (all printable)."""
    name = "torch.hostile_sh" + SH_PAYLOAD
    framework = "numpy" + SH_PAYLOAD

    def version(self):
        return "2.0" + SH_PAYLOAD


class FailsEntry(Fails):
    """Published through an entry point by the tests."""
    name = "hostile.entry_point"


class MutatesInputs(NumpyBN):
    """Writes into the arrays it is given."""
    name = "hostile.mutates"

    def run(self, pb, device):
        pb.x[...] = 0.0
        pb.gamma[...] = 7.0
        return super().run(pb, device)


# -- processes --------------------------------------------------------------------------------------

class ForkHoldsPipe(NumpyBN):
    """Forks a grandchild that keeps every inherited descriptor (the pipe to the suite) open
    for a minute, then dies."""
    name = "hostile.fork_pipe"

    def run(self, pb, device):
        pid = os.fork()
        if pid == 0:
            _mark(f"child.{os.getpid()}", "fork")
            time.sleep(60)
            os._exit(0)
        time.sleep(0.2)
        os._exit(9)


class SpawnsChildren(NumpyBN):
    """Starts a long-lived child process on every call, and answers."""
    name = "hostile.spawns"

    def run(self, pb, device):
        p = subprocess.Popen(["sleep", "300"], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
        _mark(f"child.{p.pid}", "spawn")
        return super().run(pb, device)


class SpawnsAndHangs(NumpyBN):
    name = "hostile.spawns_hangs"

    def run(self, pb, device):
        p = subprocess.Popen(["sleep", "300"], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
        _mark(f"child.{p.pid}", "spawn-hang")
        time.sleep(3600)


class DetachedChild(NumpyBN):
    """Starts a child in a session of its own (out of reach of the worker's process group)
    that inherits the worker's stdout and stderr: it must not hold the suite's output open."""
    name = "hostile.detached"

    def run(self, pb, device):
        p = subprocess.Popen(["sleep", "120"], stdin=subprocess.DEVNULL, start_new_session=True)
        _mark(f"detached.{p.pid}", "detached")
        return super().run(pb, device)


class IgnoresSignals(NumpyBN):
    """Ignores SIGTERM and SIGINT; the first call answers, every later one hangs."""
    name = "hostile.ignores_signals"

    def run(self, pb, device):
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        if _calls("ignores") >= 1:
            _mark(f"hanging.{os.getpid()}", "hang")
            while True:
                time.sleep(1)
        return super().run(pb, device)


class KillsParent(NumpyBN):
    """The first call answers; the second kills the suite's process with SIGKILL."""
    name = "hostile.kills_parent"

    def run(self, pb, device):
        if _calls("kills") >= 1:
            os.kill(os.getppid(), signal.SIGKILL)
            time.sleep(5)
        return super().run(pb, device)


class Prints(NumpyBN):
    """Prints 80 MB (stdout and stderr) during each call, then answers."""
    name = "hostile.prints"

    def run(self, pb, device):
        chunk = ("0123456789abcdef" * 4096 + "\n")
        for _ in range(640):
            sys.stdout.write(chunk)
            sys.stderr.write(chunk)
        sys.stdout.write("LAST LINE OF OUTPUT\n")
        sys.stdout.flush()
        sys.stderr.flush()
        return super().run(pb, device)


class Segfaults(NumpyBN):
    """Dies with SIGSEGV on every call: nothing about its conventions can be measured."""
    name = "hostile.segfault"

    def run(self, pb, device):
        ctypes.string_at(0)


def outputs():
    """Factory: every adapter whose constructor behaves and whose answers do not."""
    return [cls() for cls in (ComplexOut, StringOut, BytesOut, ObjectOut, IntOut, BoolOut, ScalarOut, ScalarStats,
                              NoneOut, StrValue, DatetimeOut, WrongLayout, UnknownKey, NotDict, Unpicklable,
                              PickleBomb, ModuleClass, HugeMessage, RaisesBadStr, SupportsRaises, SupportsOdd,
                              SupportsMarkup, SupportsDies, InferenceOnly, Clean)]


def text():
    """Factory: adapters whose text (version, messages) is code or markup."""
    return [RaisesCode(), FailsShell()]
