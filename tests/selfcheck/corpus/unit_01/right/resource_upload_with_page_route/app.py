import os
from datetime import datetime

import boto3
from flask import Flask, render_template

import report_data
import report_pdf

app = Flask(__name__)
s3 = boto3.resource("s3")


@app.route("/", methods=["GET"])
def home():
    return render_template("index.html")


@app.route("/report", methods=["POST"])
def report():
    pdf = report_pdf.build_pdf(report_data.fetch_sales(), "Sales")
    key = "reports/" + datetime.now().strftime("%Y%m%dT%H%M%S%f") + ".pdf"
    s3.Object(os.environ["S3_BUCKET"], key).put(Body=pdf, ContentType="application/pdf")
    return {"key": key}
