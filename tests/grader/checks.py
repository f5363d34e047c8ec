"""Behaviour checks shared by several units."""
import io
import json
import time
import urllib.error
import urllib.request

from grader.feedback import LearnerFailure

PDF_MAGIC = b"%PDF-"


def pdf_problem(data, min_pages=2):
    """'' if data is a PDF a reader can open with at least min_pages pages, else why not."""
    if not data.startswith(PDF_MAGIC):
        return f"it is not a PDF (it starts with {data[:12]!r}, not %PDF-)"
    try:
        from pypdf import PdfReader

        pages = len(PdfReader(io.BytesIO(data)).pages)
    except Exception as error:  # any parse error means a reader cannot open it
        return f"a PDF reader cannot open it ({type(error).__name__}: {error})"
    if pages < min_pages:
        return f"it has {pages} page(s); the report has at least {min_pages}"
    return ""


def attempt(call, *args, **kwargs):
    """(what call returns, None), or (None, the LearnerFailure it raised): a check can then
    report the failure after the except block, so its message is not chained to another
    ("During handling of the above exception...")."""
    try:
        return call(*args, **kwargs), None
    except LearnerFailure as error:
        return None, error


def bucket_keys(s3, bucket):
    return [o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])]


def http(method, url, body=None, timeout=10, headers=None):
    """(status, parsed JSON or text, seconds) for one HTTP request."""
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method,
                                     headers={"Content-Type": "application/json", **(headers or {})})
    started = time.monotonic()
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            status, raw = response.status, response.read()
    except urllib.error.HTTPError as error:
        status, raw = error.code, error.read()
    except (urllib.error.URLError, TimeoutError, ConnectionError) as error:
        raise LearnerFailure(f"{method} {url} got no answer within {timeout} s ({error}).") from None
    seconds = time.monotonic() - started
    try:
        return status, json.loads(raw), seconds
    except ValueError:
        return status, raw.decode(errors="replace"), seconds
