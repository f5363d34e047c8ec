"""The web app: a page with a button, and the route that starts a report."""
from flask import Flask, jsonify, render_template
from rq import Queue

from utils import make_report
from worker import conn

app = Flask(__name__)

# A Queue is a named list in Redis. The route only appends to it; a worker,
# in another process, takes jobs off it and runs them.
queue = Queue("default", connection=conn)


@app.get("/")
def index():
    return render_template("index.html")


@app.post("/report")
def create_report():
    # Enqueue and answer at once; the worker does the slow part.
    job = queue.enqueue(make_report, job_timeout=30)
    return jsonify(job_id=job.id), 202
