"""The report job."""
import os
import tempfile
import uuid
from pathlib import Path

import boto3

import report_data
import report_pdf


def make_report():
    rows = report_data.fetch_sales()
    key = f"reports/{uuid.uuid4()}.pdf"
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "report.pdf"
        path.write_bytes(report_pdf.build_pdf(rows))
        boto3.client("s3").upload_file(str(path), os.environ["S3_BUCKET"], key)
    return key
