"""Import worker.py; report its redis_url, listen and conn, and read params["key"]
through conn (the grader stored a value there)."""
import worker
from course_probe_support import params, result

result(redis_url=getattr(worker, "redis_url", None), has_conn=hasattr(worker, "conn"),
       listen=getattr(worker, "listen", None))
if hasattr(worker, "conn"):
    value = worker.conn.get(params["key"])
    result(value=value.decode() if isinstance(value, bytes) else value)
