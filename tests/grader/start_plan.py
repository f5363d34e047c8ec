"""How the preloaded Python (preload.py) starts one request: forked and run in
place, or exec'd plainly because the fork could not start it exactly as a plain
start would (another program, a shell line with more than `cd DIR && exec
PROGRAM ARGS` in words of quotes and $VAR / ${VAR:-default}, a learner file
named like a preloaded module, an interpreter setting it cannot apply after the
fork).

Imported by preload.py as a sibling; standard library only."""
import os
import re
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
CD_PREFIX = re.compile(r"^\s*cd\s+(?P<dir>[^&]+?)\s*&&(?P<rest>.*)$", re.DOTALL)
EXPANSION = re.compile(r"\$\{(?P<name>[A-Za-z_]\w*)(?::-(?P<default>[^}$`\"'\\]*))?\}|\$(?P<bare>[A-Za-z_]\w*)")
UNQUOTED_UNSAFE = set(";&|<>(){}*?[~!#\\`\n")  # bash gives these meaning outside quotes
SPLIT_OR_GLOB = set(" \t\n*?[")  # in an unquoted expansion's value: bash would split or glob it


def shell_command(line, env):
    """(folder or None, argv) for a line of the form `[cd DIR &&] [exec] PROGRAM ARGS`
    whose words use only quotes and $VAR / ${VAR} / ${VAR:-default} (as a Procfile's
    lines do), expanded as bash would with `env`; None for anything more."""
    folder, match = None, CD_PREFIX.match(line)
    if match:
        words = shell_words(match["dir"], env)
        if not words or len(words) != 1 or not words[0]:
            return None
        folder, line = words[0], match["rest"]
    argv = shell_words(line, env)
    if argv and argv[0] == "exec":
        argv = argv[1:]
    return (folder, argv) if argv else None


def shell_words(text, env):
    """The words bash makes of `text` (quote removal, parameter expansion, word splitting);
    None if it holds anything else bash would act on."""
    words, i, n = [], 0, len(text)
    while True:
        while i < n and text[i] in " \t":
            i += 1
        if i >= n:
            return words
        word, quoted = "", False  # a word with a quoted part stays a word, even an empty one
        while i < n and text[i] not in " \t":
            c = text[i]
            if c in "'\"":
                end = text.find(c, i + 1)
                if end < 0:
                    return None
                inner = text[i + 1:end]
                if c == '"':
                    inner = _expand_quoted(inner, env)
                    if inner is None:
                        return None
                word, quoted, i = word + inner, True, end + 1
            elif c == "$":
                match = EXPANSION.match(text, i)
                if not match:
                    return None
                value = _value(match, env)
                if SPLIT_OR_GLOB & set(value):
                    return None
                word, i = word + value, match.end()
            elif c in UNQUOTED_UNSAFE:
                return None
            else:
                word, i = word + c, i + 1
        if word or quoted:  # an unquoted expansion that came out empty makes no word
            words.append(word)


def _expand_quoted(inner, env):
    """The inside of a double-quoted word, expanded; None if it holds more than expansions."""
    if "\\" in inner or "`" in inner:
        return None
    out, i = "", 0
    while True:
        at = inner.find("$", i)
        if at < 0:
            return out + inner[i:]
        match = EXPANSION.match(inner, at)
        if not match:
            return None
        out, i = out + inner[i:at] + _value(match, env), match.end()


def _value(match, env):
    name = match["bare"] or match["name"]
    if match["default"] is not None:  # ${NAME:-default}: the default when NAME is unset or empty
        return env.get(name) or match["default"]
    return env.get(name, "")


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
        command = shell_command(args, env)
        if command is None:
            return plain
        folder, argv = command
        if folder:
            cwd = os.path.join(cwd, folder)
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
