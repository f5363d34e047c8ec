"""Read the rq jobs learner code enqueued, without ever unpickling what it stored.

A job's payload (function, arguments), its meta and its return value are
written by learner code, with pickle unless the learner chose JSON. Unpickling
runs whatever code the pickle names, so doing it here would run learner code
inside the grader, where it could rewrite the grade. So the grader reads jobs
through rq with RawSerializer, which hands back the stored bytes untouched:
status, queue, times, dependencies and errors are plain hash fields; the few
values the grader needs from a payload (a function name, a returned key) are
decoded as JSON, or read from a pickle's plain values (strings, numbers, lists)
by walking its opcodes, never by executing it.

guard() makes rq's pickle serializer refuse to load in this process, so a path
that would unpickle fails loudly instead of running learner code.
"""
import json
import pickletools
import zlib
from base64 import b64decode

from rq.job import Job
from rq.serializers import DefaultSerializer

# The states in which a job will not run again by itself.
ENDED = ("finished", "failed", "stopped", "canceled")
UNPICKLING_ATTEMPTS = []  # what tried to unpickle in this process (a grader bug): reported by the fixture


class RawSerializer:
    """Bytes in, the same bytes out: rq keeps learner payloads as they are stored."""

    @staticmethod
    def dumps(value):
        if isinstance(value, (bytes, bytearray)):
            return bytes(value)
        if value == {} or value is None:  # rq's own empty meta for a job it has not read
            return b""
        raise TypeError("the grader writes no job payloads of its own through a job it read")

    @staticmethod
    def loads(data):
        return data


class Opaque:
    """A value that is not plain data (an object of some class): shown, never built."""

    def __init__(self, what):
        self.what = what

    def __repr__(self):
        return f"<{self.what}>"


class ReadJob(Job):
    """An rq Job read with RawSerializer; func_name is decoded without unpickling."""

    @property
    def func_name(self):
        value = decode(self.data, first_string=True)
        return value if isinstance(value, str) else ""


def payload_problem(redis, job_id):
    """'' if the job's data field is zlib-compressed JSON, else what it is."""
    raw = redis.hget(f"rq:job:{job_id}", "data")
    if raw is None:
        return "missing"
    try:
        raw = zlib.decompress(raw)
    except zlib.error:
        pass
    try:
        json.loads(raw)
        return ""
    except ValueError:
        return "pickle" if raw[:1] == b"\x80" else "not JSON"


def fetch(redis, job_id):
    """The job with this id, or None."""
    try:
        job = ReadJob.fetch(str(job_id), connection=redis, serializer=RawSerializer)
    except Exception:
        return None
    return job


def queues(redis):
    """Every rq queue in Redis, read (registries included) without unpickling."""
    from rq import Queue

    return Queue.all(connection=redis, serializer=RawSerializer, job_class=ReadJob)


def status(job):
    value = job.get_status(refresh=True)
    return getattr(value, "value", value)


def result(job):
    """The job's return value if it is plain data (JSON or a pickled str, number, list...), else an Opaque."""
    try:
        latest = job.latest_result()
    except Exception:
        return None
    if latest is None or latest.return_value is None:
        return None
    return decode(latest.return_value)


def error(job):
    try:
        latest = job.latest_result()
        return (latest.exc_string or "") if latest else ""
    except Exception:
        return ""


def guard():
    """Make rq's pickle serializer refuse to load in this process."""
    if getattr(DefaultSerializer.loads, "refuses", False):
        return

    def refuse(data, *args, **kwargs):
        UNPICKLING_ATTEMPTS.append(len(data) if isinstance(data, (bytes, bytearray)) else 0)
        raise RuntimeError("the grader never unpickles job data (read jobs through grader.jobs)")

    refuse.refuses = True
    DefaultSerializer.loads = staticmethod(refuse)


# ---------------------------------------------------------------- decoding

PLAIN = {"NONE": None, "NEWTRUE": True, "NEWFALSE": False}
LITERALS = {"BININT", "BININT1", "BININT2", "LONG1", "LONG4", "INT", "LONG", "BINFLOAT", "FLOAT",
            "SHORT_BINUNICODE", "BINUNICODE", "BINUNICODE8", "UNICODE", "SHORT_BINSTRING", "BINSTRING",
            "STRING", "SHORT_BINBYTES", "BINBYTES", "BINBYTES8", "BYTEARRAY8"}


def decode(data, first_string=False):
    """Plain data from stored bytes: JSON, or a pickle holding only plain values.
    With first_string, the first string the payload holds (a job's function name)."""
    if isinstance(data, str):
        data = data.encode()
    if not isinstance(data, (bytes, bytearray)) or not data:
        return None
    data = bytes(data)
    if data[:1] != b"\x80":  # not a pickle (protocol 2+): JSON, maybe base64 of it
        for raw in (data, _b64(data)):
            try:
                value = json.loads(raw)
            except (ValueError, TypeError, UnicodeDecodeError):
                continue
            if first_string and isinstance(value, list) and value and isinstance(value[0], str):
                return value[0]
            return value
        return Opaque("data that is neither JSON nor a pickle")
    try:
        return _read_pickle(data, first_string)
    except Exception:
        return Opaque("a pickle the grader cannot read as plain data")


def _b64(data):
    try:
        return b64decode(data, validate=True)
    except ValueError:
        return None


def _read_pickle(data, first_string):
    """Evaluate a pickle's opcodes for plain values only; any class, call or
    global becomes an Opaque (nothing is imported, built or called)."""
    stack, marks, memo = [], [], {}
    for op, arg, _ in pickletools.genops(data):
        name = op.name
        if name in LITERALS:
            if first_string and isinstance(arg, str):
                return arg
            stack.append(arg)
        elif name in PLAIN:
            stack.append(PLAIN[name])
        elif name in ("PROTO", "FRAME"):
            continue
        elif name == "STOP":
            break
        elif name == "MARK":
            marks.append(len(stack))
        elif name in ("EMPTY_LIST", "EMPTY_DICT", "EMPTY_TUPLE", "EMPTY_SET"):
            stack.append({"EMPTY_LIST": [], "EMPTY_DICT": {}, "EMPTY_TUPLE": (), "EMPTY_SET": set()}[name])
        elif name in ("TUPLE1", "TUPLE2", "TUPLE3"):
            n = int(name[-1])
            items = tuple(stack[-n:])
            del stack[-n:]
            stack.append(items)
        elif name in ("TUPLE", "LIST", "DICT", "FROZENSET"):
            start = marks.pop()
            items = stack[start:]
            del stack[start:]
            if name == "DICT":
                stack.append(_pairs(items))
            else:
                stack.append({"TUPLE": tuple, "LIST": list, "FROZENSET": frozenset}[name](items))
        elif name == "APPEND":
            value = stack.pop()
            _append(stack[-1], [value])
        elif name in ("APPENDS", "ADDITEMS"):
            start = marks.pop()
            items = stack[start:]
            del stack[start:]
            _append(stack[-1], items)
        elif name == "SETITEM":
            value, key = stack.pop(), stack.pop()
            _setitems(stack[-1], [key, value])
        elif name == "SETITEMS":
            start = marks.pop()
            items = stack[start:]
            del stack[start:]
            _setitems(stack[-1], items)
        elif name in ("MEMOIZE",):
            memo[len(memo)] = stack[-1]
        elif name in ("PUT", "BINPUT", "LONG_BINPUT"):
            memo[arg] = stack[-1]
        elif name in ("GET", "BINGET", "LONG_BINGET"):
            stack.append(memo[arg])
        elif name == "POP":
            stack.pop()
        elif name == "POP_MARK":
            del stack[marks.pop():]
        elif name == "DUP":
            stack.append(stack[-1])
        elif name in ("GLOBAL", "INST"):
            if name == "INST":
                del stack[marks.pop():]
            stack.append(Opaque(f"a pickled {str(arg).replace(' ', '.')} object"))
        elif name == "STACK_GLOBAL":
            attr, module = stack.pop(), stack.pop()
            stack.append(Opaque(f"a pickled {module}.{attr} object"))
        elif name in ("REDUCE", "NEWOBJ", "BUILD"):
            args = stack.pop()
            target = stack.pop()
            stack.append(target if isinstance(target, Opaque) else Opaque(f"an object built from {args!r:.40}"))
        elif name == "NEWOBJ_EX":
            del stack[-3:]
            stack.append(Opaque("a pickled object"))
        elif name == "OBJ":
            del stack[marks.pop():]
            stack.append(Opaque("a pickled object"))
        else:  # persistent ids, extension codes, out-of-band buffers, ...
            return Opaque(f"a pickle using {name}")
    if first_string:
        return None
    return stack[-1] if stack else None


def _append(target, items):
    if isinstance(target, list):
        target.extend(items)
    elif isinstance(target, set):
        target.update(i for i in items if not isinstance(i, (list, dict, set)))


def _pairs(items):
    result = {}
    _setitems(result, items)
    return result


def _setitems(target, items):
    if not isinstance(target, dict):
        return
    for key, value in zip(items[::2], items[1::2]):
        try:
            target[key] = value
        except TypeError:  # an unhashable key: not plain data the grader needs
            pass


class RunsCodeWhenUnpickled:
    """Unpickling this creates a file: what an attacker's payload would do, harmlessly."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return open, (self.path, "w")


def plant_pickled_payload(redis, job, marker):
    """Replace a queued job's data with a pickle whose unpickling creates the file
    `marker`: a worker that unpickles job data runs it; a JSON worker refuses it."""
    import pickle
    import zlib

    redis.hset(job.key, "data", zlib.compress(pickle.dumps(RunsCodeWhenUnpickled(str(marker)))))
