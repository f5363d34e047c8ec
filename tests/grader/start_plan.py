"""How the preloaded Python (preload.py) starts one request: forked and run in
place, or exec'd plainly because the fork could not start it exactly as a plain
start would (another program, a shell line with more than `cd DIR && exec
PROGRAM ARGS`, a learner file named like a preloaded module, an interpreter
setting it cannot apply after the fork).

Imported by preload.py as a sibling; standard library only."""
import os
import re
import shlex
import shutil
import sys

# Variables the preloaded libraries read when imported: a request that sets one
# differently from this process gets a plain start.
READ_AT_IMPORT = {"RQ_KEY_PREFIX", "BOTO_DISABLE_CRT", "EVAL_DEBUG", "FLASK_DEBUG", "FLASK_SKIP_DOTENV",
                  # and where boto3's default session, made here (warm_boto3), finds its data
                  # files; the AWS config files can name a folder for them too
                  "AWS_DATA_PATH", "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE"}
READ_AT_IMPORT_PREFIXES = ("RL_",)  # reportlab's rl_config
# Run at start-up by `site` from a folder on the path: a plain start runs them before anything is imported.
STARTUP_HOOKS = ("sitecustomize.py", "usercustomize.py")
# Interpreter start-up settings this process can apply after the fork; any other
# PYTHON* variable (or a different locale) means a plain start.
APPLIED = {"PYTHONPATH", "PYTHONUNBUFFERED", "PYTHONDONTWRITEBYTECODE"}
SHELL_LINE = re.compile(r"^\s*(?:cd\s+(?P<dir>\S+)\s*&&\s*)?(?:exec\s+)?(?P<command>[^;&|<>`$(){}*?~!#\\\n]+?)\s*$")
VARIABLE = re.compile(r"\$\{(\w+)(?::-([^}$`\"]*))?\}|\$(\w+)")

def expand(word, env):
    """A `cd` argument as bash would expand it, for the forms a Procfile uses; None otherwise."""
    if word[:1] == '"' and word[-1:] == '"' and len(word) > 1:
        word = word[1:-1]
    elif "'" in word or '"' in word:
        return None

    def value(match):
        name, default, bare = match.groups()
        if bare:
            return env.get(bare, "")
        return env.get(name) or (default or "")

    expanded = VARIABLE.sub(value, word)
    return None if any(c in expanded for c in "$`\\\"'") else expanded


def plan(args, shell, cwd, env, venv_bin, shadowable):
    """How to run a request: ("python", cwd, argv, kind, target) to run in this process,
    or ("exec", cwd, argv) to exec it plainly."""
    plain = ("exec", cwd, ["/bin/bash", "-c", args] if shell else list(args))
    if any(k.startswith("PYTHON") and k not in APPLIED for k in env):
        return plain
    if any(env.get(k) != os.environ.get(k) for k in ("LANG", "LC_ALL", "LC_CTYPE", "TZ")):
        return plain
    if any((k in READ_AT_IMPORT or k.startswith(READ_AT_IMPORT_PREFIXES)) and env[k] != os.environ.get(k)
           for k in env):
        return plain
    if shell:
        match = SHELL_LINE.match(args)
        if not match:
            return plain
        if match["dir"]:
            folder = expand(match["dir"], env)
            if not folder:
                return plain
            cwd = os.path.join(cwd, folder)
        try:
            argv = shlex.split(match["command"])
        except ValueError:
            return plain
    else:
        argv = list(args)
    if not argv or not os.path.isdir(cwd):
        return plain
    program = argv[0]
    found = program if os.sep in program else shutil.which(program, path=env.get("PATH", os.defpath))
    if not found or os.path.dirname(os.path.abspath(found)) != venv_bin:
        return plain
    name = os.path.basename(found)
    rest = argv[1:]
    if name in ("rq", "gunicorn"):
        return checked(("python", cwd, [found, *rest], name, None), env, venv_bin, shadowable, plain)
    if os.path.realpath(found) != os.path.realpath(sys.executable):
        return plain
    unbuffered = False
    while rest and rest[0] == "-u":
        unbuffered, rest = True, rest[1:]
    if unbuffered:
        env["PYTHONUNBUFFERED"] = "1"
    if rest[:1] == ["-m"] and len(rest) > 1:
        return checked(("python", cwd, [found, *rest[2:]], "module", rest[1]), env, venv_bin, shadowable, plain)
    if not rest or rest[0].startswith("-"):
        return plain
    script = os.path.join(cwd, rest[0])
    if not os.path.isfile(script):
        return plain  # python's own "can't open file" message, from a plain start
    return checked(("python", cwd, rest, "script", script), env, venv_bin, shadowable, plain)


def search_path(kind, target, cwd, env, venv_bin):
    """The folders a plain start puts before the libraries on sys.path."""
    first = {"script": lambda: os.path.dirname(os.path.abspath(target)), "module": lambda: cwd}.get(
        kind, lambda: venv_bin)()
    extra = [os.path.join(cwd, p) for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    return [first, *extra]


def checked(decided, env, venv_bin, shadowable, plain):
    """The plan, unless a learner folder on its path holds a module named like a preloaded one."""
    _, cwd, _, kind, target = decided
    for folder in search_path(kind, target, cwd, env, venv_bin):
        if folder == venv_bin:
            continue
        try:
            names = os.listdir(folder)
        except OSError:
            continue
        if any(hook in names for hook in STARTUP_HOOKS):
            return plain
        for entry in names:
            stem = entry[:-3] if entry.endswith(".py") else entry
            package = os.path.isfile(os.path.join(folder, entry, "__init__.py"))
            if stem in shadowable and (entry.endswith(".py") or package):
                return plain
    return decided
