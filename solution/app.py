"""The web app: a page with a button, and the route that starts a report."""
# [unit 01-02]
# import os
# import uuid
#
# import boto3
# [end]
from flask import Flask, jsonify, render_template
# [unit 01-02]
#
# from report_data import fetch_sales
# from report_pdf import build_pdf
# [end]
# [unit 03+]
from rq import Queue

from utils import make_report
from worker import conn
# [end]

app = Flask(__name__)
# [unit 03+]

# A Queue is a named list in Redis. The route only appends to it; a worker,
# in another process, takes jobs off it and runs them.
queue = Queue("default", connection=conn)
# [end]


@app.get("/")
def index():
    return render_template("index.html")


@app.post("/report")
def create_report():
# [unit 01-02]
#     # Everything below runs while the browser (and Heroku's router) waits.
#     rows = fetch_sales()  # the slow query: REPORT_SECONDS seconds
#     pdf = build_pdf(rows)
#     key = f"reports/{uuid.uuid4()}.pdf"
#     s3 = boto3.client("s3")
#     s3.put_object(Bucket=os.environ["S3_BUCKET"], Key=key, Body=pdf, ContentType="application/pdf")
#     return jsonify(key=key)
# [end]
# [unit 03+]
    # Enqueue and answer at once; the worker does the slow part.
    job = queue.enqueue(make_report, job_timeout=600)
    return jsonify(job_id=job.id), 202
# [end]
