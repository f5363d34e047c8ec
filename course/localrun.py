"""`python3 -m course run`: the whole app on this machine, as Heroku runs it.

Starts what the environment does not already name (a Redis server unless
REDIS_URL is set; a local S3 with the bucket made unless S3_BUCKET is set
without AWS_ENDPOINT_URL), then the Procfile's web and worker processes with
honcho. Ctrl-C stops everything it started.
"""
import os
import re
import signal
import subprocess
import sys
from contextlib import ExitStack
from pathlib import Path

from course import ROOT, services, stages

LOCAL_BUCKET = "reports"


def _use_real_s3(env):
    return bool(env.get("S3_BUCKET")) and not env.get("AWS_ENDPOINT_URL")


def run(app_dir="solution", port=None):
    app_path = (ROOT / app_dir).resolve() if not Path(app_dir).is_absolute() else Path(app_dir)
    if not (app_path / "app.py").exists():
        print(f"course: {app_path} has no app.py; name an app folder such as solution or starter.", file=sys.stderr)
        return 2
    env = dict(os.environ)
    with ExitStack() as stack:
        try:
            if env.get("REDIS_URL"):
                print(f"course: using Redis from REDIS_URL")
            else:
                env["REDIS_URL"] = stack.enter_context(services.redis_server())
                print(f"course: Redis   {env['REDIS_URL']}")
            if _use_real_s3(env):
                print(f"course: using the S3 bucket {env['S3_BUCKET']} on AWS")
            else:
                endpoint = env.get("AWS_ENDPOINT_URL") or stack.enter_context(services.s3_server())
                bucket = env.get("S3_BUCKET", LOCAL_BUCKET)
                env.update(services.s3_environment(endpoint, bucket))
                client = services.s3_client(endpoint)
                if bucket not in {b["Name"] for b in client.list_buckets().get("Buckets", [])}:
                    client.create_bucket(Bucket=bucket)
                print(f"course: S3      {endpoint} (local; bucket {bucket})")
        except services.ServiceError as error:
            print(f"course: {error}", file=sys.stderr)
            return 1
        env["APP_DIR"] = str(app_path)
        env["PORT"] = str(port or env.get("PORT") or services.free_port())
        env.setdefault("REPORT_SECONDS", "35")
        env["PYTHONUNBUFFERED"] = "1"
        # .venv's bin/ first, so the Procfile's `gunicorn` and `python` are the pinned ones.
        env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", os.defpath)])
        print(f"course: app     {app_path.relative_to(ROOT) if app_path.is_relative_to(ROOT) else app_path} "
              f"(REPORT_SECONDS={env['REPORT_SECONDS']})")
        print(f"\n  Open http://127.0.0.1:{env['PORT']}/   (Ctrl-C stops everything)\n", flush=True)
        # The app's own Procfile (solution/ has one), else the one beside it: yours.
        procfile = stages.project_folder(app_path) / "Procfile"
        types = re.findall(r"^([A-Za-z0-9_-]+):", procfile.read_text(), re.MULTILINE)
        if "worker" not in types:
            print(f"course: {procfile.relative_to(ROOT) if procfile.is_relative_to(ROOT) else procfile} has no "
                  "worker process yet (unit 04 adds it), so only the web process runs.")
        honcho = subprocess.Popen(
            [sys.executable, "-m", "honcho", "start", "--no-colour",
             "-f", str(procfile), "-d", str(procfile.parent), *(t for t in types if t in ("web", "worker"))],
            env=env,
        )
        try:
            return honcho.wait()
        except KeyboardInterrupt:
            honcho.send_signal(signal.SIGINT)  # honcho stops web and worker
            try:
                honcho.wait(15)
            except subprocess.TimeoutExpired:
                honcho.kill()
            print("\ncourse: stopped web, worker, Redis and the local S3.")
            return 0
