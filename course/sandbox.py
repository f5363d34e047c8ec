"""The sandbox every learner process runs in: what it may read, write, reach and use.

A policy is plain data (a dict, so it crosses to the preloader as JSON): the
folders learner code may read, the folders it may write, the loopback TCP ports
it may connect to and bind, and its resource limits. `apply(policy)` is called
in the new process after its fork and before any learner code runs; the
restrictions then hold for it and everything it starts, and cannot be lifted.

Layers, each used where the kernel offers it (`layers()` says which):
- Landlock (Linux 5.13+, no privilege needed): files outside the policy's
  folders cannot be opened, so the real HOME, the course's tests and other
  students' folders are out of reach, and so is /proc (no other process's
  environment, memory or command line). Linux 6.7+ adds TCP ports: connect and
  bind only where the policy says. Linux 6.12+ adds scopes: no signal to a
  process outside the sandbox, no abstract Unix socket outside it.
- Resource limits: CPU seconds, file size, address space, core dumps, and
  processes where the user is not root (the kernel does not count root's).
- A network of its own for the whole grading run (a user and a network
  namespace, Linux, where unprivileged ones are allowed): the run's Redis, S3,
  web app and learner code share a loopback of their own, and nothing else
  is reachable, UDP included; two students graded at once cannot see each
  other's services.
- A process group of the kernel's (a cgroup with a pids limit, where this user
  may make one: root, or a delegated cgroup v2 tree): it bounds a fork bomb
  when the grader runs as root, and every process in it is found and stopped at
  the end of the check, whatever it did to hide from its ancestry.
On macOS, a Seatbelt profile (`seatbelt_profile(policy)`, entered with
libSystem's sandbox_init) holds the files, TCP and signal layers: it denies by
default, lets learner code read the system, Python and the policy's folders,
write only the policy's folders, connect only to the policy's ports on loopback,
and signal only processes in its own sandbox. There is no network of its own and
no cgroup there; resource limits apply as on Linux.
Without Landlock or Seatbelt, learner code runs with the grader's view of the
machine; the grader says so (`missing()`), and `course class` refuses to grade
others' code.

This module imports only the standard library: the preloader (tests/grader/preload.py)
imports it too, and so does `course class`, which is not run by the course's venv.
"""
import ctypes
import errno
import functools
import os
import re
import resource
import struct
import subprocess
import sys
import tempfile

SYS_CREATE_RULESET, SYS_ADD_RULE, SYS_RESTRICT_SELF = 444, 445, 446  # the same on every architecture
RULE_PATH_BENEATH, RULE_NET_PORT = 1, 2
PR_SET_NO_NEW_PRIVS = 38

FS_EXECUTE, FS_WRITE_FILE, FS_READ_FILE, FS_READ_DIR = 1 << 0, 1 << 1, 1 << 2, 1 << 3
FS_WRITE_DIR = sum(1 << n for n in range(4, 13))  # remove and make files, folders, links, sockets, fifos
FS_REFER, FS_TRUNCATE, FS_IOCTL_DEV = 1 << 13, 1 << 14, 1 << 15
FILE_ONLY = FS_EXECUTE | FS_WRITE_FILE | FS_READ_FILE | FS_TRUNCATE | FS_IOCTL_DEV  # what a rule on a file may grant
NET_BIND_TCP, NET_CONNECT_TCP = 1 << 0, 1 << 1
SCOPE_ABSTRACT_UNIX, SCOPE_SIGNAL = 1 << 0, 1 << 1

READ = FS_EXECUTE | FS_READ_FILE | FS_READ_DIR
WRITE = READ | FS_WRITE_FILE | FS_WRITE_DIR | FS_REFER | FS_TRUNCATE

# What any Python program needs to start and to find its libraries, locale, time
# zone, certificates and host names. Not /etc as a whole: it may hold secrets.
SYSTEM_READ = ["/usr", "/lib", "/lib64", "/lib32", "/bin", "/sbin", "/etc/ssl", "/etc/ca-certificates",
               "/etc/pki", "/etc/alternatives", "/etc/ld.so.cache", "/etc/localtime", "/etc/hosts",
               "/etc/nsswitch.conf", "/etc/resolv.conf", "/etc/host.conf", "/etc/gai.conf", "/etc/passwd",
               "/etc/group", "/etc/mime.types", "/etc/os-release", "/usr/share/zoneinfo", "/dev/urandom",
               "/dev/random"]
SYSTEM_WRITE = ["/dev/null", "/dev/tty"]

LOOPBACK_PORT = re.compile(r"(?:127\.0\.0\.1|localhost|0\.0\.0\.0|\[?::1\]?)?:(\d{2,5})\b")

LIMITS = {  # per process; generous for the course's apps, fatal to a runaway
    "cpu_seconds": 600,
    "file_bytes": 256 * 2**20,
    "memory_bytes": 8 * 2**30,   # address space: Python's threads reserve far more than they touch
    "processes": 1024,  # more than the user runs already (the kernel counts them all)
}


def abi():
    """The Landlock version the kernel offers (0: none)."""
    if not sys.platform.startswith("linux"):
        return 0
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        version = libc.syscall(SYS_CREATE_RULESET, None, ctypes.c_size_t(0), ctypes.c_uint32(1))
    except (OSError, AttributeError):
        return 0
    return max(version, 0)


def wanted():
    """Whether to confine learner code at all: COURSE_SANDBOX=off runs it with the
    grader's view of the machine (to measure the sandbox's cost, or to find out
    whether it is what breaks a check); `course class` refuses that. On macOS, also
    off where the Seatbelt profile keeps Python itself from starting (seatbelt_refused)."""
    if os.environ.get("COURSE_SANDBOX", "on") == "off":
        return False
    return not (sys.platform == "darwin" and seatbelt_refused())


def layers():
    """{layer: whether it holds here}, for the grader's one line and `course class`."""
    if not wanted():
        return dict.fromkeys(("files", "network", "signals", "isolation", "limits", "processes"), False)
    if sys.platform == "darwin":  # the Seatbelt profile holds the first three; no namespace, no cgroup
        held = _seatbelt() is not None
        # macOS takes RLIMIT_AS and does not enforce it: no memory limit there.
        return {"files": held, "network": held, "signals": held, "isolation": False,
                "limits": False, "processes": os.geteuid() != 0}
    version = abi()
    return {"files": version >= 1, "network": version >= 4, "signals": version >= 6,
            "isolation": own_network() is not None,
            "limits": hasattr(resource, "RLIMIT_AS"),
            "processes": os.geteuid() != 0 or Group.base() is not None}


MEANS = {"files": "learner code can read the grader's HOME and environment and write the course's files",
         "network": "learner code can reach any host",
         "signals": "learner code can signal the grader's processes",
         "isolation": "the grading shares this machine's network (UDP and other hosts are reachable)",
         "limits": "learner code has no memory or CPU limit",
         "processes": "the number of learner processes is not limited (the grader runs as root)"}
if sys.platform == "darwin":  # Seatbelt already keeps UDP and other hosts out; what is left is shared
    MEANS["isolation"] = ("the grading shares this machine's loopback (learner code reaches the ports a check "
                          "names, whoever listens on them), and a process that leaves its session and drops the "
                          "grader's marker is not stopped (no cgroup)")
    MEANS["limits"] = "learner code has no memory limit (macOS does not enforce RLIMIT_AS)"


def missing():
    """What is not enforced here, as short phrases ([] when everything is)."""
    return [MEANS[name] for name, holds in layers().items() if not holds]


def note():
    """The grader's one line about the sandbox here ('' when every layer holds)."""
    unenforced = "; ".join(missing())
    if sys.platform == "darwin" and os.environ.get("COURSE_SANDBOX", "on") != "off" and seatbelt_refused():
        return (f"sandbox off: macOS would not run Python in the course's Seatbelt profile "
                f"({seatbelt_refused()}), so learner code runs unconfined here")
    if sys.platform == "darwin" and layers()["files"]:
        held = "sandbox: macOS's Seatbelt profile holds the file, network and signal layers"
        return f"{held}. Not complete here: {unenforced}" if unenforced else held
    return f"sandbox not complete here: {unenforced}" if unenforced else ""


def loopback_ports(texts):
    """The TCP ports named in these arguments and environment values: URLs and binds
    on loopback (`127.0.0.1:6380`, `redis://:pw@localhost:6380/0`, `:8000`)."""
    ports = set()
    for text in texts:
        ports.update(int(p) for p in LOOPBACK_PORT.findall(text) if 0 < int(p) < 65536)
        if text.isdigit() and 1024 <= int(text) < 65536:  # PORT=8000
            ports.add(int(text))
    return ports


def policy(read=(), write=(), connect=(), bind=(), limits=None, group=None):
    """A policy: the system folders and these; ports as ints. None if COURSE_SANDBOX=off."""
    if not wanted():
        return None
    limits = dict(LIMITS if limits is None else limits)
    if limits.get("processes"):
        limits["processes"] += _tasks_of_this_user()
    return {"read": [*SYSTEM_READ, *map(str, read)], "write": [*SYSTEM_WRITE, *map(str, write)],
            "connect": sorted({int(p) for p in connect}), "bind": sorted({int(p) for p in bind}),
            "limits": limits, "group": group.procs if group else None}


_tasks = []


def _tasks_of_this_user():
    """How many threads this user runs (what RLIMIT_NPROC counts), read once."""
    if not _tasks:
        uid, count = os.getuid(), 0
        try:
            for entry in os.scandir("/proc"):
                if entry.name.isdigit():
                    try:
                        if entry.stat().st_uid == uid:
                            count += len(os.listdir(f"/proc/{entry.name}/task"))
                    except OSError:
                        continue
        except OSError:
            pass
        _tasks.append(count)
    return _tasks[0]


def apply(rules):
    """Confine this process (and all it will start) to `rules`. Called after a fork,
    before learner code runs. Raises OSError if Landlock or Seatbelt is there but refuses."""
    _limit(rules["limits"])
    if rules.get("group"):
        with open(rules["group"], "w") as procs:  # join it before Landlock closes /sys
            procs.write(str(os.getpid()))
    if sys.platform == "darwin":
        if _seatbelt() is not None:
            _enter_seatbelt(seatbelt_profile(rules))
        return
    version = abi()
    if version < 1:
        return
    libc = ctypes.CDLL(None, use_errno=True)
    handled_fs = READ | FS_WRITE_FILE | FS_WRITE_DIR
    handled_fs |= FS_REFER if version >= 2 else 0
    handled_fs |= FS_TRUNCATE if version >= 3 else 0
    handled_net = NET_BIND_TCP | NET_CONNECT_TCP if version >= 4 else 0
    scoped = SCOPE_ABSTRACT_UNIX | SCOPE_SIGNAL if version >= 6 else 0
    attr = struct.pack("QQQ", handled_fs, handled_net, scoped)
    size = 8 if version < 4 else 16 if version < 6 else 24
    ruleset = libc.syscall(SYS_CREATE_RULESET, ctypes.c_char_p(attr), ctypes.c_size_t(size), ctypes.c_uint32(0))
    if ruleset < 0:
        raise OSError(ctypes.get_errno(), "landlock_create_ruleset")
    try:
        for path, access in [*((p, READ) for p in rules["read"]), *((p, WRITE) for p in rules["write"])]:
            _allow_path(libc, ruleset, path, access & handled_fs)
        if handled_net:
            for port, access in [*((p, NET_CONNECT_TCP) for p in rules["connect"]),
                                 *((p, NET_BIND_TCP) for p in rules["bind"])]:
                rule = struct.pack("QQ", access, port)
                if libc.syscall(SYS_ADD_RULE, ruleset, RULE_NET_PORT, ctypes.c_char_p(rule), 0) < 0:
                    raise OSError(ctypes.get_errno(), f"landlock_add_rule port {port}")
        if libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_SET_NO_NEW_PRIVS)")
        if libc.syscall(SYS_RESTRICT_SELF, ruleset, 0) < 0:
            raise OSError(ctypes.get_errno(), "landlock_restrict_self")
    finally:
        os.close(ruleset)


def _allow_path(libc, ruleset, path, access):
    try:
        fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
    except OSError:
        return  # not on this machine: nothing to allow
    try:
        if not os.path.isdir(path):
            access &= FILE_ONLY
        rule = struct.pack("=Qi", access, fd)
        if libc.syscall(SYS_ADD_RULE, ruleset, RULE_PATH_BENEATH, ctypes.c_char_p(rule), 0) < 0:
            raise OSError(ctypes.get_errno(), f"landlock_add_rule {path}")
    finally:
        os.close(fd)


def _limit(limits):
    for name, value in (("RLIMIT_CPU", limits.get("cpu_seconds")), ("RLIMIT_FSIZE", limits.get("file_bytes")),
                        ("RLIMIT_AS", limits.get("memory_bytes")), ("RLIMIT_NPROC", limits.get("processes")),
                        ("RLIMIT_CORE", 0)):
        kind = getattr(resource, name, None)
        if kind is None or value is None:
            continue
        soft, hard = resource.getrlimit(kind)
        value = value if hard == resource.RLIM_INFINITY else min(value, hard)
        try:
            resource.setrlimit(kind, (value, value))
        except (ValueError, OSError):
            pass


# What Python and the programs a Procfile runs need on macOS, beyond the policy's folders:
# the system (its libraries and the dyld cache live under /System), Python where its
# installers put it, certificates, time zones, users and random numbers. Not /Users, not
# /private/var/folders (every user's temp and caches), not /etc as a whole.
SEATBELT_READ = ["/System", "/usr", "/bin", "/sbin", "/Library/Apple", "/Library/Frameworks",
                 "/Library/Developer/CommandLineTools", "/opt/homebrew", "/opt/local", "/private/etc/ssl",
                 "/private/etc/hosts", "/private/etc/services", "/private/etc/protocols", "/private/etc/passwd",
                 "/private/etc/group", "/private/etc/localtime", "/private/var/db/timezone", "/private/var/db/dyld",
                 "/dev/urandom", "/dev/random", "/dev/autofs_nowait"]
SEATBELT_DEVICES = ["/dev/null", "/dev/zero", "/dev/tty", "/dev/dtracehelper"]
# Services of the system a Python process asks on startup or for users, time zones and proxy
# settings. Not mDNSResponder: host names are not resolved, so no DNS query carries data out.
SEATBELT_SERVICES = ["com.apple.system.opendirectoryd.libinfo", "com.apple.system.notification_center",
                     "com.apple.system.logger", "com.apple.logd", "com.apple.SystemConfiguration.configd",
                     "com.apple.cfprefsd.daemon", "com.apple.cfprefsd.agent"]
# Facts about the machine and this process. Not kern.procargs2: that is every process's
# arguments and environment, the grader's included (macOS's /proc/PID/environ).
SEATBELT_SYSCTLS = ["kern.hostname", "kern.ostype", "kern.osrelease", "kern.osversion", "kern.osproductversion",
                    "kern.version", "kern.argmax", "kern.maxfilesperproc", "kern.maxproc", "kern.usrstack64",
                    "kern.secure_kernel", "kern.osvariant_status", "kern.boottime", "kern.ngroups",
                    "sysctl.proc_cputype", "vm.loadavg"]
SEATBELT_SYSCTL_PREFIXES = ["hw.", "machdep.cpu.", "kern.proc.pid.", "kern.proc.pgrp."]


def seatbelt_profile(rules):
    """The Seatbelt (SBPL) profile text that holds `rules` on macOS. Seatbelt matches
    the real path of a file, so every folder is given as its realpath (/tmp is
    /private/tmp there). Later rules win in SBPL; this profile only adds to a
    `deny default`, so nothing is allowed that no line below names."""
    read = _real_paths([*SEATBELT_READ, *rules["read"]])
    write = _real_paths(rules["write"])
    code = _real_paths([*SEATBELT_READ, *rules["read"], *rules["write"]])
    lines = [
        "(version 1)",
        "(deny default)",
        ";; Learner code starts programs; each stays in this sandbox and may signal only its own.",
        "(allow process-fork)",
        "(allow process-exec)",
        "(allow signal (target same-sandbox))",
        "(allow process-info* (target same-sandbox))",
        ";; A file's metadata, as Landlock leaves stat alone; its content and a folder's list stay closed.",
        "(allow file-read-metadata)",
        "(allow file-test-existence)",
        "(allow file-read* (literal \"/\"))",
        _rule("file-read*", "subpath", read),
        _rule("file-map-executable", "subpath", code),
        _rule("file-read* file-write*", "subpath", write),
        _rule("file-read* file-write-data file-ioctl", "literal", SEATBELT_DEVICES),
        "(allow file-read* file-write-data (subpath \"/dev/fd\"))",
        _rule("mach-lookup", "global-name", SEATBELT_SERVICES),
        _rule("sysctl-read", "sysctl-name", SEATBELT_SYSCTLS),
        _rule("sysctl-read", "sysctl-name-prefix", SEATBELT_SYSCTL_PREFIXES),
        "(allow ipc-posix-sem)",
        "(allow ipc-posix-shm-read* (ipc-posix-name-prefix \"apple.shm.notification_center\") "
        "(ipc-posix-name-prefix \"apple.cfprefs.\"))",
        "(allow user-preference-read)",
        ";; Unix sockets may be made (socketpair); reaching one by its path stays closed.",
        "(allow system-socket (socket-domain AF_UNIX))",
        ";; TCP and UDP: out only to the policy's ports on loopback; in only on its own ports, from loopback.",
        _rule("network-outbound", "remote ip", [f"localhost:{int(port)}" for port in rules["connect"]]),
        _rule("network-bind", "local ip", [f"*:{int(port)}" for port in rules["bind"]]),
        _rule("network-inbound", "local ip", [f"localhost:{int(port)}" for port in rules["bind"]]),
    ]
    return "\n".join(line for line in lines if line) + "\n"


def _rule(operations, kind, values):
    """One allow rule with a filter per value; '' for no values: an allow with no filter
    would allow everything."""
    if not values:
        return ""
    return f"(allow {operations}\n" + "\n".join(f"  ({kind} {sbpl_string(v)})" for v in values) + ")"


def sbpl_string(text):
    """`text` as an SBPL (Scheme) string: in double quotes, backslash and quote escaped."""
    if "\0" in text:
        raise ValueError(f"no SBPL string can hold a NUL: {text!r}")
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _real_paths(paths):
    """Absolute real paths, each once, in order (Seatbelt matches what the kernel resolved)."""
    seen = []
    for path in map(str, paths):
        if os.path.isabs(path):
            real = os.path.realpath(path)
            if real not in seen:
                seen.append(real)
    return seen


def _seatbelt():
    """libSystem's (sandbox_init, sandbox_free_error), or None where there are none."""
    if sys.platform != "darwin":
        return None
    try:
        system = ctypes.CDLL("/usr/lib/libSystem.B.dylib")
        init, free = system.sandbox_init, system.sandbox_free_error
    except (OSError, AttributeError):
        return None
    init.argtypes = [ctypes.c_char_p, ctypes.c_uint64, ctypes.POINTER(ctypes.c_void_p)]
    init.restype = ctypes.c_int
    free.argtypes = [ctypes.c_void_p]
    free.restype = None
    return init, free


@functools.lru_cache(maxsize=None)
def seatbelt_refused():
    """'' if a Python confined by a learner's kind of profile starts and imports the
    standard library here, else what went wrong. The profile is checked by the course's
    CI on some macOS versions only; where it keeps Python from starting, every check
    would fail for the grader's sake, so the grader runs without it and says so."""
    if _seatbelt() is None:
        return ""  # nothing to refuse: layers() reports the layers missing
    said, tell = os.pipe()  # what sandbox_init said, from the child

    def enter():
        try:
            _enter_seatbelt(seatbelt_profile(rules))
        except OSError as error:
            os.write(tell, str(error).encode()[:500])
            os._exit(126)

    with tempfile.TemporaryDirectory(prefix="course-seatbelt-") as folder:
        rules = {"read": [sys.prefix, sys.base_prefix, os.path.dirname(sys.executable)], "write": [folder],
                 "connect": [], "bind": []}
        try:
            trial = subprocess.run([sys.executable, "-c", "import json, socket, ssl, sqlite3, uuid"],
                                   preexec_fn=enter, cwd=folder, stdin=subprocess.DEVNULL, capture_output=True,
                                   text=True, timeout=30)
        except (OSError, subprocess.SubprocessError) as error:
            trial = subprocess.CompletedProcess([], 126, "", str(error))
        finally:
            os.close(tell)
            with os.fdopen(said, "rb") as pipe:
                refused = pipe.read().decode(errors="replace")
    if trial.returncode != 0:
        lines = (trial.stderr or "").strip().splitlines()
        return refused or (lines[-1] if lines else f"exit code {trial.returncode}")
    return ""


def _enter_seatbelt(profile):
    """Confine this process to `profile` (SBPL text: flags 0) for good, or raise OSError
    with what sandbox_init said."""
    init, free = _seatbelt()
    error = ctypes.c_void_p()
    if init(profile.encode(), 0, ctypes.byref(error)) == 0:
        return
    reason = ctypes.string_at(error.value).decode(errors="replace") if error.value else "no reason given"
    if error.value:
        free(error)
    raise OSError(errno.EPERM, f"sandbox_init refused the Seatbelt profile: {reason}")


class Group:
    """A cgroup holding one learner's processes, with a pids limit."""

    PIDS_MAX = 256  # tasks: threads count too; a check runs a few dozen
    _base = []

    STALE_AFTER = 3600  # seconds: a group lives for one check; an empty one this old was left behind

    @classmethod
    def base(cls):
        """A cgroup folder with the pids controller where this process may make groups, or None."""
        if not cls._base:
            cls._base.append(cls._find_base())
            if cls._base[0]:
                cls._remove_stale(cls._base[0])
        return cls._base[0]

    @classmethod
    def _remove_stale(cls, base):
        """Remove the empty course groups an earlier grading could not: a group keeps a
        process's exit until its parent collects it, which can outlast stop()'s bound."""
        import time

        try:
            names = [name for name in os.listdir(base) if name.startswith("course-")]
        except OSError:
            return
        for name in names:
            folder = os.path.join(base, name)
            try:
                if time.time() - os.stat(folder).st_mtime > cls.STALE_AFTER:
                    os.rmdir(folder)  # refused while any process is in it
            except OSError:
                pass

    @staticmethod
    def _find_base():
        if not sys.platform.startswith("linux") or not wanted():
            return None
        try:
            with open("/proc/self/cgroup") as own:
                lines = own.read().splitlines()
        except OSError:
            return None
        for line in lines:
            _, controllers, path = line.split(":", 2)
            if controllers == "":  # cgroup v2: delegated to this user, with pids enabled below it
                for mount in ("/sys/fs/cgroup", "/sys/fs/cgroup/unified"):
                    folder = mount + path.rstrip("/")
                    try:
                        with open(os.path.join(folder, "cgroup.subtree_control")) as control:
                            enabled = control.read().split()
                    except OSError:
                        continue
                    if "pids" in enabled and os.access(folder, os.W_OK):
                        return folder
            elif "pids" in controllers.split(","):
                folder = "/sys/fs/cgroup/pids" + path.rstrip("/")
                if os.path.isdir(folder) and os.access(folder, os.W_OK):
                    return folder
        return None

    @classmethod
    def make(cls, name):
        """A new group under the base, or None where none can be made."""
        base = cls.base()
        if base is None:
            return None
        folder = os.path.join(base, name)
        try:
            os.mkdir(folder)
            with open(os.path.join(folder, "pids.max"), "w") as limit:
                limit.write(str(cls.PIDS_MAX))
        except OSError:
            return None
        return cls(folder)

    def __init__(self, folder):
        self.folder = folder
        self.procs = os.path.join(folder, "cgroup.procs")

    def pids(self):
        try:
            with open(self.procs) as procs:
                return {int(line) for line in procs if line.strip()}
        except OSError:
            return set()

    def stop(self, within=2.0):
        """SIGKILL every process in the group until none is left, then remove it.
        Returns the pids it found."""
        import signal
        import time

        found, deadline = set(), time.monotonic() + within
        while True:
            alive = self.pids()
            found |= alive
            for pid in alive:
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass
            try:
                os.rmdir(self.folder)
                return found
            except OSError:
                if time.monotonic() > deadline:
                    return found
                time.sleep(0.01)


CLONE_NEWUSER, CLONE_NEWNET = 0x10000000, 0x40000000
SIOCSIFFLAGS, IFF_UP_LOOPBACK_RUNNING = 0x8914, 0x1 | 0x8 | 0x40
_network = []


def own_network():
    """A preexec_fn that gives a grading run (pytest and all it starts) a network of
    its own with only a loopback, or None where the kernel refuses that."""
    if not _network:
        _network.append(_enter_own_network if wanted() and _can(_enter_own_network) else None)
    return _network[0]


def _enter_own_network():
    import fcntl
    import socket

    uid, gid = os.getuid(), os.getgid()
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.unshare(CLONE_NEWUSER | CLONE_NEWNET) != 0:
        raise OSError(ctypes.get_errno(), "unshare")
    for name, text in (("setgroups", "deny"), ("uid_map", f"{uid} {uid} 1"), ("gid_map", f"{gid} {gid} 1")):
        with open(f"/proc/self/{name}", "w") as handle:
            handle.write(text)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as handle:
        fcntl.ioctl(handle, SIOCSIFFLAGS, struct.pack("16sH22x", b"lo", IFF_UP_LOOPBACK_RUNNING))


def _can(enter):
    """Whether `enter` works here: tried once, as the preexec_fn of a throwaway child."""
    if not sys.platform.startswith("linux"):
        return False
    import subprocess

    try:
        return subprocess.run([sys.executable, "-S", "-c", ""], preexec_fn=enter, timeout=30).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False
