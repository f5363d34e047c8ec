"""The web app: a page with a button, and the route that starts a report."""
import os
import uuid

import boto3
from flask import Flask, jsonify, render_template

from report_data import fetch_sales
from report_pdf import build_pdf

app = Flask(__name__)


@app.get("/")
def index():
    return render_template("index.html")


@app.post("/report")
def create_report():
    # Everything below runs while the browser (and Heroku's router) waits.
    rows = fetch_sales()  # the slow query: REPORT_SECONDS seconds
    pdf = build_pdf(rows)
    key = f"reports/{uuid.uuid4()}.pdf"
    s3 = boto3.client("s3")
    s3.put_object(Bucket=os.environ["S3_BUCKET"], Key=key, Body=pdf, ContentType="application/pdf")
    return jsonify(key=key)
