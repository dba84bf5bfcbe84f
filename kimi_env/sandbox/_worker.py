"""The sandbox worker: a standalone script the host starts as ``python -S -s -B _worker.py CONFIG_JSON``.

It must not import kimi_env (it runs with ``-S``, without site-packages; the host passes the directory that holds
RestrictedPython). Start-up order matters and is the security argument of this file:

1. resource limits (memory, file size, open files, core dumps, CPU hard cap) are set first;
2. the network namespace is unshared (no interface but a down loopback); a mount namespace gets a small private
   tmpfs over /tmp, /var/tmp and /dev/shm; ``no_new_privs`` is set; a PID namespace is entered (two forks: the
   process the host started waits outside, the namespace's init waits inside with a private /proc, and the third
   process goes on), so the code can neither see nor signal any process but its own (see
   ``_enter_pid_namespace``);
3. RestrictedPython and every module the sandbox may hand out are imported (as the starting user, from files it
   can read), and the policy objects are built;
4. privileges are dropped to an unprivileged uid when started as root, then RLIMIT_NPROC is set (it is not
   enforced for root);
5. the protocol moves to private file descriptors and fds 0-2 point at /dev/null;
6. only then is the first request read. No model-written code runs before the jail is complete.

Protocol: frames of a 4-byte big-endian length and a UTF-8 JSON object, on the inherited stdin/stdout pipes.
"""

import ast
import gc
import json
import os
import resource
import struct
import sys

# ------------------------------------------------------------------------------------------------------------------
# 1-4: the jail


def _set_limit(which, soft, hard=None):
    hard = soft if hard is None else hard
    try:
        resource.setrlimit(which, (soft, hard))
        return True
    except (ValueError, OSError):
        return False


def _libc():
    import ctypes

    return ctypes.CDLL(None, use_errno=True)


CLONE_NEWNS, CLONE_NEWUSER, CLONE_NEWPID, CLONE_NEWNET = 0x00020000, 0x10000000, 0x20000000, 0x40000000
MS_NOSUID, MS_NODEV, MS_NOEXEC, MS_BIND, MS_REC, MS_PRIVATE = 2, 4, 8, 4096, 16384, 1 << 18
MNT_DETACH = 2
PR_SET_PDEATHSIG, PR_SET_NO_NEW_PRIVS = 1, 38
# World-writable directories that get a private tmpfs (when they exist as real directories).
PRIVATE_TMP_DIRS = ("/tmp", "/var/tmp", "/dev/shm")


def _jail_early(cfg, report):
    mb = 1024 * 1024
    report["rlimit_as"] = _set_limit(resource.RLIMIT_AS, cfg["memory_mb"] * mb)
    report["rlimit_fsize"] = _set_limit(resource.RLIMIT_FSIZE, cfg["file_size_mb"] * mb)
    report["rlimit_nofile"] = _set_limit(resource.RLIMIT_NOFILE, cfg["max_open_files"])
    report["rlimit_core"] = _set_limit(resource.RLIMIT_CORE, 0)
    report["rlimit_cpu"] = _set_limit(resource.RLIMIT_CPU, cfg["cpu_lifetime_s"], cfg["cpu_lifetime_s"])
    for key in ("netns", "mountns", "private_tmp", "pidns", "private_proc", "no_new_privs"):
        report[key] = False
    libc = _libc()
    want_net = bool(cfg["isolate_network"])
    want_pid = bool(cfg.get("isolate_processes"))
    want_ns = bool(cfg.get("private_tmp")) or want_pid  # a private /proc for the PID namespace needs it too
    if os.geteuid() == 0:
        # one namespace at a time, so one the kernel refuses does not cost the others
        report["netns"] = want_net and libc.unshare(CLONE_NEWNET) == 0
        report["mountns"] = want_ns and libc.unshare(CLONE_NEWNS) == 0
        got_pid = want_pid and libc.unshare(CLONE_NEWPID) == 0
    else:
        got_pid = _unshare_unprivileged(libc, cfg, report, want_net, want_ns, want_pid)
    if report["mountns"] and cfg.get("private_tmp"):
        report["private_tmp"] = _mount_private_tmp(libc, cfg)
    try:
        report["no_new_privs"] = libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0
    except Exception:  # noqa: BLE001
        pass
    if got_pid:
        _enter_pid_namespace(libc, report)  # returns only in the process that goes on to run code


def _unshare_unprivileged(libc, cfg, report, want_net, want_ns, want_pid):
    """Without root: an unprivileged user namespace that owns the other namespaces (where the kernel allows it)."""
    uid, gid = os.getuid(), os.getgid()
    flags = (CLONE_NEWNET if want_net else 0) | (CLONE_NEWNS if want_ns else 0) | (CLONE_NEWPID if want_pid else 0)
    if not flags:
        return False
    if libc.unshare(CLONE_NEWUSER | flags) != 0:
        if not want_net or libc.unshare(CLONE_NEWUSER | CLONE_NEWNET) != 0:
            return False
        flags = CLONE_NEWNET
    try:  # keep our own uid and gid inside (files we create stay ours)
        for name, text in (("setgroups", "deny"), ("uid_map", f"{uid} {uid} 1"), ("gid_map", f"{gid} {gid} 1")):
            with open(f"/proc/self/{name}", "w") as f:
                f.write(text)
    except OSError:
        pass
    report["netns"] = bool(flags & CLONE_NEWNET)
    report["mountns"] = bool(flags & CLONE_NEWNS)
    return bool(flags & CLONE_NEWPID)


def _mount(libc, source, target, fstype, flags, data=None):
    enc = (lambda v: None if v is None else v.encode())
    return libc.mount(enc(source), enc(target), enc(fstype), flags, enc(data)) == 0


def _mount_private_tmp(libc, cfg):
    """In our own mount namespace: a small tmpfs over each world-writable temp directory. What the worker itself
    needs and may live under one of them is bound back at the same path: its own directory (usually under /tmp),
    and, when the checkout or virtual environment sits under /tmp (a CI clone, say), the library path and this
    script's folder. All or nothing: on any failure nothing stays mounted and the worker runs with the host's
    directories (reported as ``private_tmp: False``)."""
    # Without private propagation a mount here would appear in the host's namespace: stop if it fails.
    if not _mount(libc, None, "/", None, MS_REC | MS_PRIVATE):
        return False
    keep = []
    for path in (cfg["workdir"], cfg.get("lib_path"), os.path.dirname(os.path.abspath(__file__))):
        if path and os.path.isdir(path):
            real = os.path.realpath(path)
            if real not in [k for k, _ in keep]:
                keep.append((real, None))
    fds = []
    try:
        for real, _ in keep:
            fds.append((real, os.open(real, os.O_RDONLY | os.O_DIRECTORY)))
    except OSError:
        for _, fd in fds:
            os.close(fd)
        return False
    mounted = []
    ok = True
    try:
        for d in PRIVATE_TMP_DIRS:
            if os.path.islink(d) or not os.path.isdir(d):
                continue
            if not _mount(libc, "tmpfs", d, "tmpfs", MS_NOSUID | MS_NODEV, f"size={cfg['tmp_mb']}m,mode=1777"):
                ok = d != "/tmp"  # /tmp is the one that matters; the others are skipped if refused
                if not ok:
                    break
                continue
            mounted.append(d)
            for real, fd in fds:
                if real.startswith(d.rstrip("/") + "/"):
                    os.makedirs(real, mode=0o700 if real == os.path.realpath(cfg["workdir"]) else 0o755,
                                exist_ok=True)  # parents 0755 (umask), inside the tmpfs
                    if not _mount(libc, f"/proc/self/fd/{fd}", real, None, MS_BIND):
                        ok = False
                        break
            if not ok:
                break
    except OSError:
        ok = False
    finally:
        for _, fd in fds:
            os.close(fd)
    if not ok or not mounted:
        for d in reversed(mounted):
            libc.umount2(d.encode(), MNT_DETACH)
        return False
    return True


def _enter_pid_namespace(libc, report):
    """After ``unshare(CLONE_NEWPID)``: fork the namespace's init, which forks the process that runs code.

    Three processes: the one the host started (outside the namespace) waits for the init and mirrors how the code
    process ended (a signal death becomes its own, so the host sees SIGXCPU and the like); the init (PID 1: signals
    from inside the namespace cannot reach it, and when it dies the kernel kills everything in the namespace) mounts
    a private /proc and waits; the code process (PID 2) returns from here and runs the worker. Both waiting
    processes give the protocol pipes up at once, so the host sees end-of-file as soon as the code process dies.
    Neither ever runs model-written code.
    """
    init = os.fork()
    if init:
        code = _supervise(init)
        _exit_like(code)
    # PID 1 of the new namespace; dies if the host-side process dies (a SIGKILL from the parent namespace)
    libc.prctl(PR_SET_PDEATHSIG, 9, 0, 0, 0)
    if report["mountns"]:
        report["private_proc"] = _mount(libc, "proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
    worker = os.fork()
    if worker:
        os._exit(_supervise(worker))
    libc.prctl(PR_SET_PDEATHSIG, 9, 0, 0, 0)
    report["pidns"] = os.getpid() != report["pid"]


def _supervise(child):
    """Give up the protocol pipes, reap every child (an init inherits orphans), return how ``child`` ended."""
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)
    os.close(devnull)
    while True:
        try:
            pid, status = os.waitpid(-1, 0)
        except InterruptedError:
            continue
        except ChildProcessError:
            return 1
        if pid == child:
            if os.WIFSIGNALED(status):
                return 128 + os.WTERMSIG(status)
            return os.WEXITSTATUS(status) if os.WIFEXITED(status) else 1


def _exit_like(code):
    """Exit the way the code process did: by the same signal (default action, no core: RLIMIT_CORE is 0)."""
    import signal

    if code > 128:
        sig = code - 128
        try:
            signal.signal(sig, signal.SIG_DFL)
            signal.pthread_sigmask(signal.SIG_UNBLOCK, [sig])
            os.kill(os.getpid(), sig)
        except (OSError, ValueError, RuntimeError):
            pass
    os._exit(code)


def _jail_late(cfg, report):
    os.chdir(cfg["workdir"])
    uid, gid = cfg["uid"], cfg["gid"]
    if os.geteuid() == 0 and uid is not None:
        os.setgroups([])
        os.setgid(gid)
        os.setuid(uid)
    report["uid"] = os.getuid()
    report["euid"] = os.geteuid()
    report["nproc"] = _set_limit(resource.RLIMIT_NPROC, cfg["max_processes"])
    report["dropped_privileges"] = os.geteuid() != 0


# ------------------------------------------------------------------------------------------------------------------
# Output capture


class OutputLimitExceeded(Exception):
    """Raised in the sandboxed code when it prints more than the cap."""


class OutputBuffer:
    def __init__(self, cap):
        self.cap = cap
        self.parts = []
        self.size = 0
        self.dropped = 0

    def write(self, text):
        if not isinstance(text, str):
            raise TypeError(f"write() expects str, got {type(text).__name__}")
        if self.size + len(text) > self.cap:
            room = self.cap - self.size
            if room > 0:
                self.parts.append(text[:room])
                self.size += room
            self.dropped += len(text) - max(room, 0)
            raise OutputLimitExceeded(
                f"the code printed more than {self.cap} characters; printing stopped. "
                "Print a summary or a slice instead."
            )
        self.parts.append(text)
        self.size += len(text)
        return len(text)

    def flush(self):
        pass

    def text(self):
        return "".join(self.parts)


class _Current:
    buffer = None


def _make_print_factory(current):
    class Collector:
        """Stands for RestrictedPython's PrintCollector; every print of a call goes to the call's buffer."""

        def __init__(self, _getattr_=None):
            pass

        def write(self, text):
            return current.buffer.write(text)

        def __call__(self):
            return current.buffer.text()

        def _call_print(self, *objects, sep=" ", end="\n", file=None, flush=False):
            if file is not None:
                raise TypeError("print(file=...) is not supported in the sandbox; printed text goes to the output.")
            if sep is not None and not isinstance(sep, str):
                raise TypeError(f"sep must be None or a string, not {type(sep).__name__}")
            if end is not None and not isinstance(end, str):
                raise TypeError(f"end must be None or a string, not {type(end).__name__}")
            sep = " " if sep is None else sep
            end = "\n" if end is None else end
            current.buffer.write(sep.join(str(o) for o in objects) + end)

    return Collector


# ------------------------------------------------------------------------------------------------------------------
# The restricted policy


class SafeModule:
    """A curated stand-in for a module: only the listed names, no path to the real module object."""

    def __init__(self, name, attrs):
        object.__setattr__(self, "_name", name)
        for key, value in attrs.items():
            object.__setattr__(self, key, value)

    def __getattr__(self, key):
        raise AttributeError(f"module {self._name!r} has no attribute {key!r} in the sandbox")

    def __setattr__(self, key, value):
        raise AttributeError(f"module {self._name!r} is read-only in the sandbox")

    def __delattr__(self, key):
        raise AttributeError(f"module {self._name!r} is read-only in the sandbox")

    def __repr__(self):
        return f"<module {self._name!r} (sandboxed)>"


MODULE_NAMES = {
    "statistics": "mean fmean geometric_mean harmonic_mean median median_low median_high median_grouped mode "
    "multimode quantiles pstdev pvariance stdev variance covariance correlation linear_regression NormalDist "
    "StatisticsError",
    "collections": "Counter OrderedDict defaultdict deque namedtuple ChainMap",
    "re": "compile search match fullmatch findall finditer sub subn split escape error Pattern Match "
    "IGNORECASE I MULTILINE M DOTALL S VERBOSE X ASCII A UNICODE U NOFLAG",
    "json": "dumps loads JSONDecodeError",
    "datetime": "date time datetime timedelta timezone tzinfo MINYEAR MAXYEAR",
    "fractions": "Fraction",
    "decimal": "Decimal Context localcontext getcontext setcontext InvalidOperation DivisionByZero Overflow Underflow "
    "Inexact Rounded DecimalException FloatOperation ROUND_UP ROUND_DOWN ROUND_CEILING ROUND_FLOOR ROUND_HALF_UP "
    "ROUND_HALF_DOWN ROUND_HALF_EVEN ROUND_05UP MAX_PREC MAX_EMAX MIN_EMIN",
    "functools": "reduce partial lru_cache cache cmp_to_key total_ordering",
    "string": "ascii_letters ascii_lowercase ascii_uppercase digits hexdigits octdigits punctuation printable "
    "whitespace capwords Template",
    "heapq": "heappush heappop heapify heapreplace heappushpop nlargest nsmallest merge",
    "bisect": "bisect bisect_left bisect_right insort insort_left insort_right",
    "textwrap": "wrap fill dedent indent shorten",
    "copy": "copy deepcopy",
    # clocks and conversions, no sleep (a call's wall-clock time is limited); datetime's C strftime also imports
    # `time` through the sandbox's __import__ and calls time.strftime
    "time": "time time_ns perf_counter perf_counter_ns monotonic monotonic_ns process_time process_time_ns "
    "gmtime localtime mktime strftime asctime ctime struct_time timezone altzone daylight tzname",
}
# Modules made only of C functions and numbers: every public name is safe to hand out.
ALL_PUBLIC = ("math", "cmath", "itertools", "unicodedata")
# operator minus the helpers that look attributes up by a string (attrgetter, methodcaller bypass the getattr guard)
# and the ones that write into any object (setitem, delitem bypass the write guard).
OPERATOR_DENY = {"attrgetter", "methodcaller", "setitem", "delitem"}
RANDOM_METHODS = (
    "random uniform randint randrange choice choices shuffle sample gauss normalvariate lognormvariate expovariate "
    "vonmisesvariate gammavariate betavariate paretovariate weibullvariate triangular getrandbits seed"
)


def build_policy(cfg):
    import abc
    import builtins
    import collections
    import copy  # noqa: F401
    import decimal
    import functools
    import heapq  # noqa: F401
    import operator
    import random
    import string
    import types
    from importlib import import_module

    from RestrictedPython import compile_restricted_exec
    from RestrictedPython.Guards import guarded_iter_unpack_sequence, guarded_unpack_sequence
    from RestrictedPython.transformer import INSPECT_ATTRIBUTES

    real = {name: import_module(name) for name in list(MODULE_NAMES) + list(ALL_PUBLIC) + ["operator", "random"]}

    static_modules = {}
    for name, names in MODULE_NAMES.items():
        mod = real[name]
        static_modules[name] = {n: getattr(mod, n) for n in names.split() if hasattr(mod, n)}
    for name in ALL_PUBLIC:
        mod = real[name]
        static_modules[name] = {n: getattr(mod, n) for n in dir(mod) if not n.startswith("_")}
    static_modules["operator"] = {
        n: getattr(operator, n) for n in dir(operator) if not n.startswith("_") and n not in OPERATOR_DENY
    }

    frame_like = (
        types.FrameType,
        types.TracebackType,
        types.CodeType,
        types.GeneratorType,
        types.CoroutineType,
        types.AsyncGeneratorType,
    )
    generator_ok = frozenset({"send", "throw", "close"})
    blocked_names = set(INSPECT_ATTRIBUTES) | {
        "gi_frame", "gi_code", "gi_yieldfrom", "gi_running", "cr_frame", "cr_code", "cr_await", "cr_origin",
        "ag_frame", "ag_code", "ag_await", "f_back", "f_globals", "f_locals", "f_builtins", "f_code", "tb_frame",
        "tb_next",
    }  # fmt: skip
    formatter_type = string.Formatter
    missing = object()

    def guarded_getattr(obj, name, default=missing):
        if type(name) is not str:
            raise TypeError(f"attribute name must be a str, not {type(name).__name__}")
        if name.startswith("_"):
            raise AttributeError(f'"{name}" is not allowed: names starting with "_" are private in the sandbox')
        if name in blocked_names:
            raise AttributeError(f'"{name}" is not allowed in the sandbox (frame and code introspection)')
        if isinstance(obj, frame_like) and name not in generator_ok:
            raise AttributeError(f'"{name}" is not allowed on {type(obj).__name__} objects in the sandbox')
        if name in ("format", "format_map") and (
            isinstance(obj, str) or (isinstance(obj, type) and issubclass(obj, str))
        ):
            raise NotImplementedError(
                "str.format() is not available in the sandbox (it can read attributes); use f-strings or %."
            )
        if isinstance(obj, formatter_type) or (isinstance(obj, type) and issubclass(obj, formatter_type)):
            raise NotImplementedError("string.Formatter is not available in the sandbox")
        if isinstance(obj, BaseException) and name == "obj":
            raise AttributeError('"obj" of an exception is not available in the sandbox')
        if name == "mro" and isinstance(obj, type):
            # cls.mro() is __mro__ by another name: it hands out base classes the code was never given (enum.Enum,
            # whose functional API builds classes from a dict; collections.abc classes)
            raise AttributeError('"mro" is not allowed in the sandbox (class introspection)')
        if name == "register" and isinstance(obj, abc.ABCMeta):
            # ABC.register() writes into a registry shared by every later episode of the worker
            # (Fraction.register(float) breaks Fraction arithmetic for the next episode)
            raise AttributeError('"register" of abstract classes is not available in the sandbox')
        if default is missing:
            return getattr(obj, name)
        return getattr(obj, name, default)

    def safe_hasattr(obj, name):
        try:
            guarded_getattr(obj, name)
            return True
        except Exception:  # noqa: BLE001
            return False

    user_classes = set()

    def make_class(name, bases, namespace, **kwargs):
        if kwargs:
            raise TypeError("class keyword arguments are not supported in the sandbox")
        for base in bases:
            if isinstance(base, type) and issubclass(base, type):
                raise TypeError("defining metaclasses is not supported in the sandbox")
        cls = type(name, bases, namespace)
        user_classes.add(cls)
        return cls

    writable_types = (dict, list, set, bytearray, collections.deque, decimal.Context)

    def is_user_class(cls):
        return any(klass in user_classes for klass in cls.__mro__)

    real_total_ordering = functools.total_ordering

    def total_ordering(cls):
        # functools.total_ordering() setattr()s comparison methods onto the class it is given, past the write
        # guard: allow it only on the code's own classes, never on a library class shared with later episodes
        if not (isinstance(cls, type) and cls in user_classes):
            raise TypeError("functools.total_ordering() works only on classes defined by your code in the sandbox")
        return real_total_ordering(cls)

    static_modules["functools"] = dict(static_modules["functools"], total_ordering=total_ordering)

    class ReadOnly:
        __slots__ = ("_ob",)

        def __init__(self, ob):
            object.__setattr__(self, "_ob", ob)

        def _deny(self, *args):
            raise TypeError(
                f"cannot modify a {type(self._ob).__name__} object in the sandbox; only your own variables, "
                "lists, dicts, sets and instances of classes you defined can be changed"
            )

        __setattr__ = __delattr__ = __setitem__ = __delitem__ = _deny

    def guarded_write(ob):
        if isinstance(ob, writable_types):
            return ob
        if isinstance(ob, type):
            if ob in user_classes:
                return ob
        elif is_user_class(type(ob)):
            return ob
        return ReadOnly(ob)

    def guarded_setattr(obj, name, value):
        if type(name) is not str or name.startswith("_"):
            raise AttributeError(f"setattr: {name!r} is not allowed (private or not a string)")
        setattr(guarded_write(obj), name, value)

    inplace = {
        "+=": operator.iadd, "-=": operator.isub, "*=": operator.imul, "/=": operator.itruediv,
        "//=": operator.ifloordiv, "%=": operator.imod, "**=": operator.ipow, "<<=": operator.ilshift,
        ">>=": operator.irshift, "&=": operator.iand, "^=": operator.ixor, "|=": operator.ior,
        "@=": operator.imatmul,
    }  # fmt: skip

    def inplacevar(op, x, y):
        fn = inplace.get(op)
        if fn is None:
            raise SyntaxError(f"unsupported in-place operator {op!r}")
        return fn(x, y)

    def guarded_getitem(ob, index):
        return ob[index]

    def guarded_getiter(ob):
        return iter(ob)

    def one_arg_type(*args):
        if len(args) != 1:
            raise TypeError("type() takes exactly one argument in the sandbox (creating classes with type() is off)")
        cls = type(args[0])
        if issubclass(cls, type):
            # the type of a class is a metaclass (type, ABCMeta, EnumType): the real one builds classes from a dict,
            # with any dunder (__del__, __eq__, __subclasshook__). Answer with this guarded stand-in instead, so
            # `type(int) is type` still holds.
            return one_arg_type
        return cls

    one_arg_type.__name__ = one_arg_type.__qualname__ = "type"

    builtin_names = (
        "abs all any ascii bin bool bytearray bytes callable chr complex dict divmod enumerate filter float format "
        "frozenset hash hex int isinstance issubclass iter len list map max min next object oct ord pow range repr "
        "reversed round set slice sorted str sum tuple zip property staticmethod classmethod Ellipsis NotImplemented "
        "True False None "
        "BaseException Exception ArithmeticError AssertionError AttributeError EOFError FloatingPointError "
        "GeneratorExit ImportError ModuleNotFoundError IndexError KeyError LookupError MemoryError NameError "
        "NotImplementedError OverflowError RecursionError RuntimeError StopIteration TypeError UnboundLocalError "
        "UnicodeError UnicodeDecodeError UnicodeEncodeError ValueError ZeroDivisionError TimeoutError"
    )
    safe_builtins = {n: getattr(builtins, n) for n in builtin_names.split()}
    safe_builtins.update(
        getattr=guarded_getattr,
        hasattr=safe_hasattr,
        setattr=guarded_setattr,
        type=one_arg_type,
    )
    safe_builtins["__build_class__"] = builtins.__build_class__  # class statements; unreachable by name

    current = _Current()
    printer = _make_print_factory(current)

    allowed_modules = sorted(set(static_modules) | {"random"})

    def session_modules(rng):
        mods = {name: SafeModule(name, attrs) for name, attrs in static_modules.items()}
        rnd = {n: getattr(rng, n) for n in RANDOM_METHODS.split()}
        rnd["Random"] = random.Random
        mods["random"] = SafeModule("random", rnd)
        return mods

    def new_globals(seed):
        rng = random.Random(seed)
        mods = session_modules(rng)

        def guarded_import(name, globals=None, locals=None, fromlist=(), level=0):
            if level != 0:
                raise ImportError("relative imports are not available in the sandbox")
            if type(name) is not str or name not in mods:
                raise ImportError(
                    f"module {name!r} is not available in the sandbox; available: {', '.join(allowed_modules)}"
                )
            return mods[name]

        bltns = dict(safe_builtins)
        bltns["__import__"] = guarded_import
        return {
            "__builtins__": bltns,
            "__name__": "__main__",
            "__metaclass__": make_class,
            "_getattr_": guarded_getattr,
            "_getitem_": guarded_getitem,
            "_getiter_": guarded_getiter,
            "_write_": guarded_write,
            "_inplacevar_": inplacevar,
            "_unpack_sequence_": guarded_unpack_sequence,
            "_iter_unpack_sequence_": guarded_iter_unpack_sequence,
            "_print_": printer,
        }

    def compile_code(tree, filename):
        return compile_restricted_exec(tree, filename)

    import re as re_module
    import weakref

    def reset_state():
        """Drop what an ended episode left in the process; return what survived (empty: the worker is clean).

        Called with the episode's namespace already dropped. Finalizers of its objects (a suspended generator's
        ``finally``) run here, between episodes, not in the middle of the next episode's code; what they do to
        shared state is undone after them.
        """
        classes = []
        for _ in range(3):  # a finalizer may define a class or fill the regex cache again
            classes += [weakref.ref(c) for c in user_classes]
            user_classes.clear()
            re_module.purge()  # the regex caches keep the pattern objects (str subclasses) they were given
            if not gc.collect() and not user_classes:
                break
        decimal.setcontext(decimal.Context())
        problems = []
        if user_classes or any(ref() is not None for ref in classes):
            problems.append("a class defined by the episode is still alive")
        for ob in gc.get_objects():
            kind, code = type(ob), None  # type(), not isinstance(): no user-defined __class__ is consulted
            if kind is types.FunctionType:
                code = ob.__code__
            elif kind is types.GeneratorType:
                code = ob.gi_code
            elif kind is types.CoroutineType:
                code = ob.cr_code
            elif kind is types.AsyncGeneratorType:
                code = ob.ag_code
            if code is not None and code.co_filename.startswith("<cell "):
                problems.append(f"a {type(ob).__name__} defined by the episode is still alive")
                break
        return problems

    return {
        "new_globals": new_globals,
        "compile": compile_code,
        "current": current,
        "reset_state": reset_state,
    }


def build_plain_policy(cfg):
    """Test-only tier: ordinary Python, contained by the process jail alone."""
    import builtins
    import contextlib
    import decimal
    import random
    from importlib import import_module

    # Imported while still privileged: after the drop the worker may not be able to read the stdlib (e.g. a pyenv
    # under /root), and the jail tests must fail because of the jail, not because of an ImportError.
    for name in ("os", "socket", "subprocess", "threading", "signal", "mmap", "ctypes", "pickle", "io", "pathlib"):
        try:
            import_module(name)
        except ImportError:
            pass

    current = _Current()

    def new_globals(seed):
        random.seed(seed)
        return {"__builtins__": builtins, "__name__": "__main__"}

    class Result:
        def __init__(self, code):
            self.code, self.errors = code, ()

    def compile_code(tree, filename):
        return Result(compile(tree, filename, "exec"))

    def reset_state():
        gc.collect()
        decimal.setcontext(decimal.Context())
        return []

    return {
        "new_globals": new_globals,
        "compile": compile_code,
        "current": current,
        "reset_state": reset_state,
        "redirect": contextlib.redirect_stdout,
    }


# ------------------------------------------------------------------------------------------------------------------
# Running one call


def _cap(text, limit):
    if len(text) <= limit:
        return text
    return text[: max(0, limit - 40)] + f" [... {len(text) - limit + 40} characters cut]"


def _error_location(tb, filename):
    line = None
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == filename:
            line = tb.tb_lineno
        tb = tb.tb_next
    return line


def _format_exception(exc, filename, cap):
    try:
        msg = str(exc)
    except BaseException:  # noqa: BLE001 - a broken __str__ must not break the worker
        msg = "<the exception's message could not be rendered>"
    text = f"{type(exc).__name__}: {msg}" if msg else type(exc).__name__
    line = _error_location(exc.__traceback__, filename)
    if line is not None:
        text = _cap(text, cap - 20) + f" (line {line})"
    return _cap(text, cap)


def _split_last_expression(tree):
    """Rewrite a trailing expression ``e`` into ``_ = e`` so its value can be shown, like a notebook cell."""
    if tree.body and isinstance(tree.body[-1], ast.Expr):
        last = tree.body[-1]
        assign = ast.Assign(targets=[ast.Name("_", ast.Store())], value=last.value)
        ast.copy_location(assign, last)
        tree.body[-1] = assign
        ast.fix_missing_locations(tree)
        return True
    return False


class Session:
    def __init__(self, policy, cfg, seed):
        self.globals = policy["new_globals"](seed)
        self.count = 0


def _rss_bytes():
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


def end_session(policy, cfg, session, baseline_rss):
    """Drop an episode's namespace and undo its traces; return why the worker must not be reused (empty: clean)."""
    policy["current"].buffer = None  # a finalizer that prints now fails, it cannot write into the next episode
    soft = int(resource.getrusage(resource.RUSAGE_SELF).ru_utime + resource.getrusage(resource.RUSAGE_SELF).ru_stime)
    _set_limit(resource.RLIMIT_CPU, min(soft + cfg["cpu_per_call_s"], cfg["cpu_lifetime_s"]), cfg["cpu_lifetime_s"])
    if session is not None:
        g, session.globals = session.globals, None
        g.clear()  # breaks the namespace's cycles; finalizers may run (what they raise is unraisable: stderr only)
        g = None
    try:
        problems = list(policy["reset_state"]())
    except BaseException as exc:  # noqa: BLE001
        problems = [f"cleaning the worker failed ({type(exc).__name__})"]
    slack = max(64, cfg["memory_mb"] // 4) * 1024 * 1024
    if baseline_rss and _rss_bytes() > baseline_rss + slack:
        problems.append("the worker holds much more memory than when it started")
    return problems


def run_call(policy, cfg, session, code):
    session.count += 1
    filename = f"<cell {session.count}>"
    out = OutputBuffer(cfg["max_stdout_chars"])
    reply = {"status": "ok", "stdout": "", "value": None, "error": None, "stdout_dropped": 0}
    err_cap = cfg["max_error_chars"]

    # parse + compile, guarded against pathological source (MemoryError / RecursionError in the compiler)
    try:
        tree = ast.parse(code, filename, "exec")
        has_value = _split_last_expression(tree)
        result = policy["compile"](tree, filename)
    except SyntaxError as exc:
        where = f" (line {exc.lineno})" if exc.lineno else ""
        reply.update(status="compile_error", error=_cap(f"{type(exc).__name__}: {exc.msg}{where}", err_cap))
        return reply
    except (MemoryError, RecursionError) as exc:
        reply.update(
            status="compile_error",
            error=f"{type(exc).__name__}: the code is too deeply nested or too large to compile; simplify it.",
        )
        return reply
    except Exception as exc:  # noqa: BLE001 - e.g. ValueError for NUL bytes, UnicodeError for lone surrogates
        reply.update(status="compile_error", error=_cap(f"{type(exc).__name__}: {exc}", err_cap))
        return reply
    if result.errors:
        errors = [_cap(str(e), 300) for e in result.errors[:5]]
        more = f" (+{len(result.errors) - 5} more)" if len(result.errors) > 5 else ""
        reply.update(status="compile_error", error=_cap("; ".join(errors) + more, err_cap))
        return reply

    g = session.globals
    g.pop("_", None) if has_value else None
    policy["current"].buffer = out
    soft = int(resource.getrusage(resource.RUSAGE_SELF).ru_utime + resource.getrusage(resource.RUSAGE_SELF).ru_stime)
    _set_limit(resource.RLIMIT_CPU, min(soft + cfg["cpu_per_call_s"], cfg["cpu_lifetime_s"]), cfg["cpu_lifetime_s"])
    redirect = policy.get("redirect")
    try:
        if redirect is not None:
            with redirect(out):
                exec(result.code, g)
        else:
            exec(result.code, g)
        if has_value:
            value = g.get("_")
            if value is not None:
                reply["value"] = _cap(repr(value), cfg["max_value_chars"])
    except OutputLimitExceeded as exc:
        reply.update(status="resource_limit", error=f"OutputLimitExceeded: {exc}")
    except MemoryError:
        reply.update(
            status="resource_limit",
            error=f"MemoryError: the code ran out of memory (limit {cfg['memory_mb']} MiB); use less data.",
        )
    except BaseException as exc:  # noqa: BLE001 - everything the model's code raises is reported, not fatal
        if out.dropped:
            reply.update(status="resource_limit", error=f"OutputLimitExceeded: more than {out.cap} characters printed")
        else:
            try:
                reply.update(status="model_error", error=_format_exception(exc, filename, err_cap))
            except BaseException:  # noqa: BLE001
                reply.update(status="model_error", error=f"{type(exc).__name__} (message unavailable)")
        exc = None
    finally:
        policy["current"].buffer = None
    if out.dropped and reply["status"] == "ok":
        reply.update(status="resource_limit", error=f"OutputLimitExceeded: more than {out.cap} characters printed")
    reply["stdout"] = out.text()
    reply["stdout_dropped"] = out.dropped
    return reply


# ------------------------------------------------------------------------------------------------------------------
# Main loop


def _read_exact(f, n):
    data = f.read(n)
    if data is None or len(data) != n:
        return None
    return data


def _send(f, obj):
    data = json.dumps(obj, ensure_ascii=False).encode("utf-8", "replace")
    f.write(struct.pack(">I", len(data)) + data)
    f.flush()


def main():
    cfg = json.loads(sys.argv[1])
    report = {"pid": os.getpid()}
    _jail_early(cfg, report)
    if cfg["lib_path"]:
        sys.path.append(cfg["lib_path"])
    proto_in = os.fdopen(os.dup(0), "rb", buffering=0)
    proto_out = os.fdopen(os.dup(1), "wb")
    try:
        policy = build_plain_policy(cfg) if cfg["plain_python"] else build_policy(cfg)
        _jail_late(cfg, report)
    except BaseException as exc:  # noqa: BLE001
        _send(proto_out, {"op": "failed", "error": _cap(f"{type(exc).__name__}: {exc}", 500), "jail": report})
        return 3
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)
    os.close(devnull)
    sys.setrecursionlimit(cfg["recursion_limit"])
    baseline_rss = _rss_bytes()
    _send(proto_out, {"op": "ready", "jail": report})

    session = None
    while True:
        head = _read_exact(proto_in, 4)
        if head is None:
            return 0
        (size,) = struct.unpack(">I", head)
        if size > cfg["max_request_bytes"]:
            return 4
        body = _read_exact(proto_in, size)
        if body is None:
            return 0
        request = json.loads(body)
        op = request.get("op")
        if op == "exec":
            if request.get("new_session") is not None or session is None:
                end_session(policy, cfg, session, 0)  # the host ends sessions before reuse; this is a second net
                session = Session(policy, cfg, request.get("new_session") or 0)
            reply = run_call(policy, cfg, session, request["code"])
            usage = resource.getrusage(resource.RUSAGE_SELF)
            reply["cpu_total_s"] = round(usage.ru_utime + usage.ru_stime, 4)
            try:
                _send(proto_out, reply)
            except MemoryError:
                _send(proto_out, {"status": "resource_limit", "stdout": "", "value": None,
                                  "error": "MemoryError: the result was too large to send back."})  # fmt: skip
        elif op == "end":
            problems = end_session(policy, cfg, session, baseline_rss)
            session = None
            _send(proto_out, {"op": "ended", "clean": not problems, "problems": problems[:3]})
        elif op == "ping":
            _send(proto_out, {"op": "pong"})
        else:
            return 5


if __name__ == "__main__":
    sys.exit(main())
