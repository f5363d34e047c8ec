"""Turn what learner code printed when it crashed into one plain sentence."""
import re

RQ_CONNECTION = (
    "`from rq import Connection` fails: rq 2.0 removed Connection (old tutorials still use it). "
    "Delete that import and the `with Connection(...):` block, and pass the connection in: "
    "`Worker(listen, connection=conn).work()`."
)


def explain(stderr, what="your code"):
    """One or two sentences about the last error in stderr, or '' if there is none."""
    text = stderr.strip()
    if not text:
        return ""
    lines = text.splitlines()
    if "cannot import name 'Connection' from 'rq'" in text or "cannot import name 'Connection' from \"rq\"" in text:
        return RQ_CONNECTION
    if "cannot import name 'use_connection'" in text or "cannot import name 'get_current_connection'" in text:
        return ("rq 2.0 removed use_connection/get_current_connection. Create the client yourself "
                "(`conn = redis.Redis.from_url(redis_url)`) and pass `connection=conn` to Queue and Worker.")
    m = re.search(r"(?:exec: )?(\S+): (?:command )?not found", text)
    if m:
        return (f"{what} could not start: the command `{m.group(1)}` was not found. If it is a library's "
                "command (gunicorn, rq), list the library in requirements.txt and install it.")
    if "ssl_cert_reqs" in text and "TypeError" in text:
        return ("redis-py rejects ssl_cert_reqs for a plain redis:// URL. Pass ssl_cert_reqs=None only "
                "when the URL starts with rediss://.")
    # The last 'File "...", line N' that points into learner code, and the final error line.
    last = next((l for l in reversed(lines) if l and not l.startswith(" ")), lines[-1]).strip()
    location = ""
    for line in lines:
        m = re.match(r'\s*File "([^"]+)", line (\d+)', line)
        if m and "site-packages" not in m.group(1) and "/lib/python" not in m.group(1) and not m.group(1).startswith("<"):
            location = f"{m.group(1).rsplit('/', 1)[-1]}, line {m.group(2)}"
    if "NoSuchBucket" in last:
        return (f"{what} uploaded to a bucket that does not exist ({location or 'NoSuchBucket'}). Upload to the "
                "bucket S3_BUCKET names: `os.environ['S3_BUCKET']`.")
    m = re.match(r"ModuleNotFoundError: No module named '([^'.]+)", last)
    if m:
        module = m.group(1)
        if module in ("utils", "worker", "app"):
            return f"{module}.py is missing (or not in the app folder), so {what} cannot import it."
        return (f"{what} imports `{module}`, which is not installed. If it is a library, add it to "
                f"requirements.txt and run `python3 -m course test` once to install; if it is a typo, fix it.")
    if last.startswith(("SyntaxError", "IndentationError", "TabError")):
        for line in lines:
            m = re.match(r'\s*File "([^"]+)", line (\d+)', line)
            if m:
                location = f"{m.group(1).rsplit('/', 1)[-1]}, line {m.group(2)}"
        return f"{location}: {last}. Python cannot even read the file; fix that line first."
    if location:
        return f"{what} raised {last} ({location})."
    return f"{what} raised {last}."
