"""What Heroku does with a repository, as far as the grader copies it: the slug
it builds (what git pushes, nothing else), how its router reaches a web
process (from outside the dyno), and the dyno sizes and plans it has today."""
import fnmatch
import re
import shutil
import socket
import urllib.error
import urllib.request
from pathlib import Path

# ---------------------------------------------------------------- the slug

# Module names the app folder's name must not take in the slug (a folder called
# app/ would shadow app.py for a line run from the top).
SHADOWING = ("app", "utils", "worker", "report_data")


def ignore_rules(folder):
    """The patterns of folder/.gitignore, as (pattern, only directories, anchored)."""
    path = Path(folder) / ".gitignore"
    rules = []
    if path.is_file():
        for line in path.read_text(errors="replace").splitlines():
            line = line.strip()
            if not line or line.startswith(("#", "!")):  # negations are rare here: not followed
                continue
            only_dirs = line.endswith("/")
            line = line.rstrip("/")
            anchored = "/" in line
            rules.append((line.lstrip("/"), only_dirs, anchored))
    return rules


def ignored(relative, is_dir, rules):
    """True if git, with these rules, would leave out the path (relative to the rules' folder)."""
    for pattern, only_dirs, anchored in rules:
        if only_dirs and not is_dir:
            continue
        if fnmatch.fnmatch(relative if anchored else relative.rsplit("/", 1)[-1], pattern):
            return True
    return False


def _copy_pushed(source, dest, rules_by_folder):
    """Copy source to dest as git would push it: without what a .gitignore (of the
    repository's top or of the folder itself) leaves out, and without a virtual
    environment (Heroku's build refuses one committed: the slug never has one)."""
    def skip(folder, names):
        left_out = set()
        for name in names:
            path = Path(folder) / name
            is_dir = path.is_dir() and not path.is_symlink()
            if name == ".git" or (is_dir and (path / "pyvenv.cfg").is_file()):
                left_out.add(name)
                continue
            for top, rules in rules_by_folder:
                try:
                    relative = path.relative_to(top).as_posix()
                except ValueError:
                    continue
                if ignored(relative, is_dir, rules):
                    left_out.add(name)
                    break
        return left_out

    shutil.copytree(source, dest, symlinks=True, ignore=skip)


def build_slug(target, procfile, into):
    """Lay the repository out as the slug Heroku builds from it, in the new folder
    `into`; return (folder the Procfile's lines run from, APP_DIR or None).

    The slug holds what git pushes: the app folder and the files at the top of the
    repository, nothing git ignores (so no .venv). A Procfile at the top runs from the
    top, with APP_DIR naming the app folder. One inside the app folder that uses APP_DIR
    is the course's top-level Procfile copied there: it runs from a top that holds the
    app folder. One that does not is a single-app repository's: it runs from the app
    folder itself."""
    app = Path(target.path)
    into = Path(into)
    top = procfile.parent
    rules = [(app.parent, ignore_rules(app.parent)), (app, ignore_rules(app))]
    if top == app and "APP_DIR" not in procfile.read_text():
        _copy_pushed(app, into, rules)
        return into, None
    into.mkdir(parents=True)
    if top == app:
        name = app.name if app.name not in SHADOWING else "starter"
    else:
        name = app.name
        for path in top.iterdir():  # the repository's top-level files: the Procfile, requirements.txt...
            if path.is_file() and not ignored(path.name, False, ignore_rules(top)):
                shutil.copyfile(path, into / path.name)
    _copy_pushed(app, into / name, rules)
    return into, name


# ---------------------------------------------------------------- the router

def outside_address():
    """An IPv4 address of this machine other than the loopback, or None: the address
    a route out of the machine would leave from. A UDP connect only picks the route;
    it sends nothing."""
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        probe.connect(("192.0.2.1", 9))  # TEST-NET-1: never reached, only routed
        address = probe.getsockname()[0]
    except OSError:
        return None
    finally:
        probe.close()
    return None if address.startswith("127.") or address == "0.0.0.0" else address


def reachable(address, port, timeout=2):
    """True if a TCP connection to address:port is accepted."""
    try:
        with socket.create_connection((address, port), timeout=timeout):
            return True
    except OSError:
        return False


def listen_addresses(port):
    """The local addresses TCP sockets listen on at `port` (read from /proc/net on
    Linux), as strings; None where that cannot be read."""
    found = set()
    seen = False
    for table, family in (("/proc/net/tcp", socket.AF_INET), ("/proc/net/tcp6", socket.AF_INET6)):
        try:
            with open(table) as f:
                seen = True
                next(f)
                for line in f:
                    fields = line.split()
                    address, hex_port = fields[1].rsplit(":", 1)
                    if fields[3] == "0A" and int(hex_port, 16) == port:  # 0A: LISTEN
                        raw = bytes.fromhex(address)
                        # /proc prints each 32-bit word in host order (little-endian here).
                        raw = b"".join(raw[i:i + 4][::-1] for i in range(0, len(raw), 4))
                        found.add(socket.inet_ntop(family, raw))
        except (OSError, IndexError, ValueError):
            continue
    return found if seen else None


def loopback(address):
    return address.startswith("127.") or address in ("::1", "::ffff:127.0.0.1") or \
        address.startswith("::ffff:127.")


def only_on_loopback(port):
    """True if the web process at `port` can be reached only from inside the machine
    (what a dyno's loopback is: the router cannot reach it). Tried from this machine's
    own outside address where it has one; else read from the addresses its sockets
    are bound to. False when neither can be told."""
    address = outside_address()
    if address is not None:
        return not reachable(address, port)
    bound = listen_addresses(port)
    return bool(bound) and all(loopback(a) for a in bound)


# ---------------------------------------------------------------- app.json

# Dyno sizes Heroku has today (size names are case-insensitive in app.json): the
# Cedar generation's, the Private and Shield spaces', and the Fir generation's
# dyno-<cpu>c-<memory>gb sizes.
CURRENT_SIZES = re.compile(
    r"eco|basic|standard-[12]x|performance-(m|l|l-ram|xl|2xl)"
    r"|(private|shield)-(s|m|l|l-ram|xl|2xl|memory-(l|xl|2xl))"
    r"|dyno-\d+c-\d+(\.\d+)?gb", re.IGNORECASE)
# Sizes Heroku had and has retired: free and hobby (November 2022, replaced by eco
# and basic), and the first names of the standard and performance sizes.
RETIRED_SIZES = {"free", "hobby", "1x", "2x", "px", "performance"}
# Sizes that run one dyno per process type at most.
SINGLE_DYNO_SIZES = {"eco", "basic"}


def server_software(url, timeout=10):
    """The Server header a GET on url answers with ('' if none, or no answer)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.headers.get("Server", "")
    except urllib.error.HTTPError as error:
        return error.headers.get("Server", "")
    except (OSError, ValueError):
        return ""
