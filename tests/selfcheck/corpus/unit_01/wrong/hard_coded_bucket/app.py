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
    pdf = build_pdf(fetch_sales())
    key = f"reports/{uuid.uuid4()}.pdf"
    boto3.client("s3").put_object(Bucket="my-reports", Key=key, Body=pdf)
    return jsonify(key=key)
