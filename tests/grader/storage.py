"""S3 and the PDFs in it: what a report upload left in the grader's local S3."""
import io
from datetime import timedelta

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


def bucket_keys(s3, bucket):
    """Every key in the bucket, past the 1,000 of one listing page."""
    return [o["Key"] for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket)
            for o in page.get("Contents", [])]


def empty(s3, bucket):
    """Delete every object in the bucket, a thousand keys a request (S3's most per call)."""
    keys = bucket_keys(s3, bucket)
    for start in range(0, len(keys), 1000):
        s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": k} for k in keys[start:start + 1000]],
                                                 "Quiet": True})


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
