"""Behaviour checks shared by several units."""
import io
import json
import time
import urllib.error
import urllib.request
from datetime import timedelta

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
    """Every key in the bucket, past the 1,000 of one listing page."""
    return [o["Key"] for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket)
            for o in page.get("Contents", [])]


def backdated_objects(bucket, keys, age_seconds, body=b"%PDF-1.4 old report"):
    """Put objects in the local S3 dated age_seconds ago. S3 sets LastModified itself, so no
    upload can be backdated; the local S3 (moto's server) runs in the grader's own process,
    so the grader writes them into its store directly, a thousand in milliseconds."""
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.s3.models import s3_backends

    backend = s3_backends[DEFAULT_ACCOUNT_ID]["aws"]
    for key in keys:
        stored = backend.put_object(bucket, key, body)
        stored.last_modified = stored.last_modified - timedelta(seconds=age_seconds)


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


def wait_for_app(base_url, seconds, give_up=lambda: False):
    """True once GET base_url/ answers at all, within `seconds` (or until give_up()
    says waiting is pointless). A web server opens its port before its workers have
    imported the app (gunicorn does), and a busy machine can take seconds to import
    Flask, rq and boto3: a request sent at once would wait on the import, not on the
    route."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and not give_up():
        try:
            http("GET", f"{base_url}/", timeout=min(5, max(0.5, deadline - time.monotonic())))
            return True
        except LearnerFailure:
            time.sleep(0.2)
    return False
