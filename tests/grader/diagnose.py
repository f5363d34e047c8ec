"""Turn what learner code printed when it crashed into one plain sentence.

Learner output can be anything: megabytes on one line, prints that look like
errors, warnings, chained tracebacks. Each line is cut to LINE_CHARS before any
pattern looks at it, and no pattern can backtrack across a line, so reading a
log takes time in proportion to its (already bounded) size.
"""
import re
from pathlib import Path

from course import sandbox

LINE_CHARS = 400
PROBES = Path(__file__).with_name("probes")  # the grader's probe files, run in the learner's app folder
PROBE_FILE = "course_probe.py"  # the grader's own probe script: never named to the learner
RQ_CONNECTION = (
    "`from rq import Connection` fails: rq 2.0 removed Connection (old tutorials still use it). "
    "Delete that import and the `with Connection(...):` block, and pass the connection in: "
    "`Worker(listen, connection=conn).work()`."
)
FILE_LINE = re.compile(r'\s*File "([^"]{1,300})", line (\d{1,7})')
# The last line of a traceback: `SomeError: message`, `pkg.mod.SomeError`, or a bare name.
EXCEPTION_LINE = re.compile(r"^([A-Za-z_][\w.]{0,100}(?:Error|Exception|Exit|Interrupt|Warning|Fault|"
                            r"Failure|Timeout|Refused|NotFound|NoSuchKey|NoSuchBucket|Invalid\w*)|"
                            r"[A-Za-z_][\w.]{0,100}\.[A-Z]\w{0,60})(?::\s(.*))?$")
WARNING_LINE = re.compile(r"^\S{1,300}:\d{1,7}: \w{0,60}Warning: ")
NOT_FOUND = re.compile(r"(?:^|[\s:])([^\s:]{1,100}): (?:command )?not found")
TRACEBACK = "Traceback (most recent call last):"
# What Redis (and redis-py) say to a client that gave no password, or the wrong one.
NO_PASSWORD = re.compile(r"AuthenticationError|NOAUTH|WRONGPASS|Authentication required|"
                         r"invalid username-password pair")
PASSWORD_NOT_USED = (
    "the password in REDIS_URL was not used, so Redis refused the connection. Heroku's REDIS_URL carries "
    "one too (rediss://:<password>@host:port): build the client from the whole URL, "
    "`redis.Redis.from_url(redis_url)`, not from its host and port alone (or pass the parsed URL's password "
    "with them).")
CHAIN_LINES = ("During handling of the above exception", "The above exception was the direct cause")


def _lines(text):
    return [line[:LINE_CHARS] + ("..." if len(line) > LINE_CHARS else "") for line in text.splitlines()]


def _short(path):
    return path.replace("\\", "/").rsplit("/", 1)[-1]


def _is_learner_file(path):
    return ("site-packages" not in path and "/lib/python" not in path and not path.startswith("<")
            and _short(path) != PROBE_FILE and "/course-probe-" not in path and not path.startswith(str(PROBES)))


def last_exception(lines):
    """(the final exception line of the last traceback, the learner file and line it points at)."""
    start = max((i for i, line in enumerate(lines) if line.startswith(TRACEBACK)), default=None)
    if start is None:
        return "", ""
    # A chained traceback: the whole chain, from the first traceback of it.
    first = start
    while True:
        earlier = max((i for i, line in enumerate(lines[:first]) if line.startswith(TRACEBACK)), default=None)
        if earlier is None or not any(lines[j].startswith(CHAIN_LINES) for j in range(earlier, first)):
            break
        first = earlier
    exception, location = "", ""
    for line in lines[start + 1:]:
        if not line.strip() or line.startswith(" "):
            continue
        exception = line.strip()
        break
    for line in lines[first:start + 1 + len(lines)]:
        m = FILE_LINE.match(line)
        if m and _is_learner_file(m.group(1)):
            location = f"{_short(m.group(1))}, line {m.group(2)}"
    return exception, location


def explain(output, what="your code"):
    """One or two sentences about the last error in output, or '' if there is none."""
    lines = [line for line in _lines(output.strip()) if not WARNING_LINE.match(line)]
    if not lines:
        return ""
    text = "\n".join(lines)
    if "cannot import name 'Connection' from 'rq'" in text or "cannot import name 'Connection' from \"rq\"" in text:
        return RQ_CONNECTION
    if "cannot import name 'use_connection'" in text or "cannot import name 'get_current_connection'" in text:
        return ("rq 2.0 removed use_connection/get_current_connection. Create the client yourself "
                "(`conn = redis.Redis.from_url(redis_url)`) and pass `connection=conn` to Queue and Worker.")
    for line in lines:
        if "not found" in line:
            m = NOT_FOUND.search(line)
            if m:
                return (f"{what} could not start: the command `{m.group(1)}` was not found. If it is a library's "
                        "command (gunicorn, rq), list the library in requirements.txt and install it.")
    if "ssl_cert_reqs" in text and "TypeError" in text:
        return ("redis-py rejects ssl_cert_reqs for a plain redis:// URL. Pass ssl_cert_reqs=None only "
                "when the URL starts with rediss://.")
    exception, location = last_exception(lines)
    if not exception:  # `python file.py` with a file that does not parse prints no "Traceback" line
        exception = next((line for line in reversed(lines)
                          if line.startswith(("SyntaxError", "IndentationError", "TabError"))), "")
    if exception.startswith(("SyntaxError", "IndentationError", "TabError")):
        for line in lines:
            m = FILE_LINE.match(line)
            if m and _is_learner_file(m.group(1)):
                location = f"{_short(m.group(1))}, line {m.group(2)}"
        return f"{location or 'A file'}: {exception}. Python cannot even read the file; fix that line first."
    if not exception:
        # No traceback: a shell's message, or something the code printed. Quote it as what it is.
        last = next((line.strip() for line in reversed(lines) if line.strip()), "")
        if not last:
            return ""
        return f"{what} stopped without a Python error; the last thing it printed was {last[:200]!r}."
    if NO_PASSWORD.search(exception):
        return f"{what} raised {exception.split(':')[0]}: {PASSWORD_NOT_USED}"
    if "NoSuchBucket" in exception:
        return (f"{what} uploaded to a bucket that does not exist ({location or 'NoSuchBucket'}). Upload to the "
                "bucket S3_BUCKET names: `os.environ['S3_BUCKET']`.")
    m = re.match(r"ModuleNotFoundError: No module named '([^'.]{1,100})", exception)
    if m:
        module = m.group(1)
        if module in ("utils", "worker", "app"):
            return f"{module}.py is missing (or not in the app folder), so {what} cannot import it."
        return (f"{what} imports `{module}`, which is not installed. If it is a library, add it to "
                f"requirements.txt and run `python3 -m course test` once to install; if it is a typo, fix it.")
    said = f"{what} raised {exception} ({location})." if location else f"{what} raised {exception}."
    return said + limit_met(exception, text)


def limit_met(exception, text):
    """The sandbox limit (course/sandbox.py) an exception shows learner code ran into, as a sentence."""
    if exception.startswith("MemoryError"):
        return f" Learner code gets at most {sandbox.LIMITS['memory_bytes'] >> 30} GiB of memory when graded."
    if "File too large" in exception:
        return f" The grader allows no file larger than {sandbox.LIMITS['file_bytes'] >> 20} MiB."
    if exception.startswith("BlockingIOError") and "fork" in text:
        return " It met the grader's limit on processes: start a fixed, small number of them."
    return ""


MANY_PROCESSES = 64  # a probe imports the app; an import that starts more than a few is a runaway


def started_many(count):
    """The sentence for code stopped while `count` processes it started still ran ('' if few)."""
    if count < MANY_PROCESSES:
        return ""
    return (f"By then it had started {count} processes and was still going, into the grader's limit on "
            "processes: start a fixed, small number of them, and none when a module is imported.")


REQUEST = re.compile(r"\b(GET|POST|PUT|DELETE|PATCH) (/[^\s'\"]{0,300})")
FLASK_LOGGED = re.compile(r"Exception on (/\S{0,300}) \[(\w+)\]")
LOG_RECORD = re.compile(r"^(\d{1,3}\.){3}\d{1,3} - |^\d{4}-\d\d-\d\d[ T]\d\d:")


def logged_error(web_logs, probe_outputs, message):
    """The exception an app logged for the request `message` names (METHOD /path),
    as a sentence; '' if the message names no request or none of the logs holds
    an exception for it. Flask logs 'Exception on /path [METHOD]' before each one."""
    wanted = REQUEST.findall(message or "")
    if not wanted:
        return ""
    for log in [*web_logs, *probe_outputs][::-1]:
        lines = _lines(log)
        for i in range(len(lines) - 1, -1, -1):
            m = FLASK_LOGGED.search(lines[i])
            if not m or not any(m.group(2) == method and _same_path(m.group(1), path) for method, path in wanted):
                continue
            block = []
            for line in lines[i + 1:i + 300]:  # up to the next log record: another request's
                if FLASK_LOGGED.search(line) or line.startswith("[") or LOG_RECORD.match(line):
                    break
                block.append(line)
            return explain("\n".join(block), what="the route")
    return ""


def _same_path(logged, named):
    """'/report/abc' logged for '/report/abc' named; a named path cut short ('/report/...') matches its start."""
    named = named.rstrip(".,;:)")
    return logged == named or (named.endswith("...") and logged.startswith(named[:-3]))
