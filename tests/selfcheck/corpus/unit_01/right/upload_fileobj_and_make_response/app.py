"""Reports, built while the request waits."""
import io
import os
import uuid

import boto3
from flask import Flask, jsonify, make_response, render_template

from report_data import fetch_sales
from report_pdf import build_pdf

app = Flask(__name__)


def store(pdf):
    key = f"reports/{uuid.uuid4().hex}.pdf"
    boto3.client("s3").upload_fileobj(io.BytesIO(pdf), os.environ["S3_BUCKET"], key)
    return key


@app.get("/")
def index():
    return make_response(render_template("index.html"), 200)


@app.post("/report")
def create_report():
    return jsonify({"key": store(build_pdf(fetch_sales()))}), 200
