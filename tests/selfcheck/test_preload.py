"""A learner process forked from the grader's preloaded Python (grader/preload.py)
sees what a plain start would show it: its arguments, import path, environment,
folder, session, output, exit code and traceback, and `ps` names it alike. What
the preloader cannot start exactly is started plainly."""
import json
import os
import re
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import pytest

from grader.processes import command_line, wait_until
from grader.spawning import ForkedPopen, Preloader, spawn

pytestmark = pytest.mark.skipif(Preloader.get() is None, reason="the preloader runs on Linux only")

REPORT = textwrap.dedent("""\
    import json, os, sys
    print("out", flush=False)
    info = {"name": __name__, "argv": sys.argv, "path": sys.path[:3], "cwd": os.getcwd(),
            "env": {k: v for k, v in os.environ.items() if k not in ("_", "PWD", "SHLVL", "OLDPWD")},
            "session": os.getsid(0) == os.getpid(), "stdin": sys.stdin.read(), "bytecode": sys.dont_write_bytecode}
    sys.stderr.write(json.dumps(info) + "\\n")
    raise SystemExit(int(os.environ.get("EXIT_WITH", "0")))
""")


def plain(args, cwd, env, shell=False):
    with tempfile.TemporaryFile() as out:
        popen = subprocess.Popen(args, cwd=cwd, env=env, shell=shell, executable="/bin/bash" if shell else None,
                                 stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                 start_new_session=True)
        code = popen.wait(30)
        out.seek(0)
        return code, out.read().decode(), "plain"


def preloaded(args, cwd, env, shell=False):
    with tempfile.TemporaryFile() as out:
        popen = spawn(args, cwd=cwd, env=env, shell=shell, output=out)
        kind = "forked" if isinstance(popen, ForkedPopen) else "plain"
        code = popen.wait(30)
        out.seek(0)
        return code, out.read().decode(), kind


@pytest.fixture
def app(tmp_path):
    folder = tmp_path / "app"
    folder.mkdir()
    (folder / "report.py").write_text(REPORT)
    (folder / "crash.py").write_text("import json\n\ndef go():\n    raise ValueError('learner bug')\n\ngo()\n")
    env = {"PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]),
           "PYTHONPATH": str(folder), "PYTHONUNBUFFERED": "1", "PYTHONDONTWRITEBYTECODE": "1",
           "APP_DIR": str(folder), "REDIS_URL": "redis://127.0.0.1:1", "EXIT_WITH": "3"}
    for key in ("LANG", "LC_ALL", "LC_CTYPE", "TZ"):
        if key in os.environ:
            env[key] = os.environ[key]
    return folder, env


def facts(output):
    return json.loads(re.search(r"\{.*\}", output)[0])


@pytest.mark.parametrize("how", ["script", "procfile line"])
def test_a_forked_process_sees_what_a_plain_start_shows_it(app, how):
    folder, env = app
    if how == "script":
        args, cwd, shell = [sys.executable, "report.py", "--flag"], folder, False
    else:
        args, cwd, shell = 'cd "${APP_DIR:-starter}" && exec python report.py --flag', folder.parent, True
    want_code, want_out, _ = plain(args, cwd, env, shell)
    code, out, kind = preloaded(args, cwd, env, shell)
    assert kind == "forked", "the preloader should have started this itself"
    assert code == want_code == 3
    assert facts(out) == facts(want_out)
    assert out.splitlines()[0] == want_out.splitlines()[0] == "out"  # -u / PYTHONUNBUFFERED: in order



ARGS = "import json, sys\nprint(json.dumps({'argv': sys.argv[1:], 'preloaded': 'rq' in sys.modules}))\n"


@pytest.mark.parametrize("line, in_place", [
    ('exec python args.py --bind "0.0.0.0:${PORT:-5000}" "${APP_DIR:-starter}" $EMPTY "" \'a b\' w$PORT', True),
    ('cd "${APP_DIR:-starter}" && exec python args.py ${NOT_SET:-x}', True),
    ('cd "${APP_DIR:-starter}" && exec python args.py $SPACED', False),   # bash splits the value
    ('cd "${APP_DIR:-starter}" && exec python args.py "$(echo hi)"', False),  # a command substitution
    ('cd "${APP_DIR:-starter}" && exec python args.py *.py', False),       # a glob
], ids=["quoted_expansions", "default", "split", "substitution", "glob"])
def test_a_procfile_line_gets_the_words_bash_gives_it(app, line, in_place):
    """A Procfile line with quotes and ${VAR:-default} (the course's web line) runs in
    the preloaded Python with the arguments bash would give it; anything more is exec'd."""
    folder, env = app
    (folder / "args.py").write_text(ARGS)
    env = {**env, "PORT": "5123", "EMPTY": "", "SPACED": "two words"}
    cwd = folder if "cd " not in line else folder.parent
    want_code, want_out, _ = plain(line, cwd, env, shell=True)
    code, out, _ = preloaded(line, cwd, env, shell=True)
    want, got = json.loads(want_out), json.loads(out)
    assert code == want_code == 0
    assert got["argv"] == want["argv"], f"bash gives {want['argv']}, the preloader {got['argv']}"
    assert got["preloaded"] is in_place, "run in the preloaded Python" if got["preloaded"] else "exec'd plainly"

def test_a_traceback_names_the_learner_file_not_the_preloader(app):
    folder, env = app
    want_code, want_out, _ = plain([sys.executable, "crash.py"], folder, env)
    code, out, kind = preloaded([sys.executable, "crash.py"], folder, env)
    assert kind == "forked"
    assert code == want_code == 1
    assert out == want_out


def test_ps_shows_the_learner_command(app):
    folder, env = app
    (folder / "wait.py").write_text("import time\ntime.sleep(30)\n")
    with tempfile.TemporaryFile() as out:
        popen = spawn([sys.executable, "wait.py"], cwd=folder, env=env, output=out)
        try:
            assert isinstance(popen, ForkedPopen)
            want = f"{sys.executable} wait.py"
            assert wait_until(lambda: command_line(popen.pid) == want, 5), command_line(popen.pid)
            popen.terminate()
            assert popen.wait(10) == -15
        finally:
            popen.kill()


@pytest.mark.parametrize("shadow", ["redis.py", "flask/__init__.py"])
def test_a_learner_module_named_like_a_preloaded_one_gets_a_plain_start(app, shadow):
    """In a plain start the learner's redis.py wins over the library; forked, the
    library is already imported, so the preloader must start it plainly."""
    folder, env = app
    (folder / shadow).parent.mkdir(exist_ok=True)
    (folder / shadow).write_text("SHADOW = True\n")
    (folder / "uses.py").write_text(f"import {Path(shadow).parts[0].removesuffix('.py')} as m\n"
                                    "print(getattr(m, 'SHADOW', False))\n")
    code, out, kind = preloaded([sys.executable, "uses.py"], folder, env)
    assert kind == "forked"  # forked, then exec'd: the plain start, in the forked process
    assert (code, out.strip()) == (0, "True")


def test_what_it_cannot_start_exactly_is_exec_d_plainly(app):
    folder, env = app
    args = "cd \"$APP_DIR\" && EXIT_WITH=5 python report.py | cat; exit ${PIPESTATUS[0]}"
    want = plain(args, folder, env, shell=True)
    got = preloaded(args, folder, env, shell=True)
    assert got[0] == want[0] == 5
    assert facts(got[1]) == facts(want[1])


def test_a_startup_hook_on_the_path_runs_first(app, tmp_path):
    """A sitecustomize.py on PYTHONPATH (the grader counts boto3 clients with one) runs
    before anything is imported in a plain start; so it must here."""
    folder, env = app
    hooks = tmp_path / "hooks"
    hooks.mkdir()
    (hooks / "sitecustomize.py").write_text("import sys\nsys.hooked = 'botocore' not in sys.modules\n")
    (folder / "hooked.py").write_text("import sys\nprint(getattr(sys, 'hooked', None))\n")
    env = {**env, "PYTHONPATH": os.pathsep.join([str(hooks), env["PYTHONPATH"]])}
    assert preloaded([sys.executable, "hooked.py"], folder, env)[:2] == (0, "True\n")


S3_CLIENT = textwrap.dedent("""\
    import boto3, json
    session = boto3.DEFAULT_SESSION
    # Nothing read from any AWS config file before the learner's code asks: the
    # preloader's would be the grader's own.
    read = session is not None and session._session._config is not None
    client = boto3.client("s3")
    credentials = client._request_signer._credentials
    print(json.dumps([read, client.meta.region_name, client.meta.endpoint_url, credentials.access_key]))
""")


def test_a_boto3_client_reads_the_learners_environment_not_the_preloaders(app):
    """The preloader loads boto3's S3 data into its default session; the client a
    learner makes from it still takes region, endpoint and keys from its own environment."""
    folder, env = app
    (folder / "client.py").write_text(S3_CLIENT)
    env = {**env, "AWS_ENDPOINT_URL": "http://127.0.0.1:9", "AWS_DEFAULT_REGION": "eu-west-3",
           "AWS_ACCESS_KEY_ID": "learner-key", "AWS_SECRET_ACCESS_KEY": "learner-secret",
           "HOME": str(folder)}
    want = plain([sys.executable, "client.py"], folder, env)
    got = preloaded([sys.executable, "client.py"], folder, env)
    assert got[2] == "forked"
    assert got[:2] == want[:2]
    assert json.loads(got[1]) == [False, "eu-west-3", "http://127.0.0.1:9", "learner-key"]


FILES_READ = textwrap.dedent("""\
    import boto3, botocore.loaders, json
    opened = []
    load_file = botocore.loaders.JSONFileLoader.load_file
    botocore.loaders.JSONFileLoader.load_file = lambda self, path: opened.append(path) or load_file(self, path)
    boto3.resource("s3")
    boto3.client("s3")
    print(json.dumps(opened))
""")


def test_a_learners_first_s3_client_and_resource_read_no_data_file(app):
    """boto3.resource('s3'), as the course's starter writes it, and boto3.client('s3')
    find the S3 model, rules and resource definitions already loaded in a forked process."""
    folder, env = app
    (folder / "files_read.py").write_text(FILES_READ)
    env = {**env, "AWS_DEFAULT_REGION": "eu-west-3", "AWS_ACCESS_KEY_ID": "k", "AWS_SECRET_ACCESS_KEY": "s",
           "HOME": str(folder)}
    code, out, kind = preloaded([sys.executable, "files_read.py"], folder, env)
    assert (code, kind) == (0, "forked"), out
    assert json.loads(out) == [], f"read in the learner's process: {out}"

@pytest.mark.parametrize("variable, code", [
    ("RQ_KEY_PREFIX", "import rq.defaults; print(rq.defaults.RQ_KEY_PREFIX)"),
    ("WEB_CONCURRENCY", "from gunicorn.config import Workers; print(Workers.default)"),
    ("AWS_DATA_PATH", "import boto3; boto3.client('s3', region_name='us-east-1', aws_access_key_id='k', "
                      "aws_secret_access_key='s'); print(boto3.DEFAULT_SESSION._loader.search_paths[0])"),
])
def test_settings_libraries_read_when_imported_follow_the_environment(app, variable, code):
    folder, env = app
    (folder / "setting.py").write_text(code + "\n")
    assert preloaded([sys.executable, "setting.py"], folder, {**env, variable: "7"})[:2] == (0, "7\n")
