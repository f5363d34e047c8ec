from flask import Flask, render_template
from rq import Queue

import worker

app = Flask(__name__)


@app.route("/")
def index():
    return render_template("index.html")


@app.route("/report", methods=["POST"])
def create_report():
    queue = Queue("default", connection=worker.conn)
    job = queue.enqueue("utils.make_report", job_timeout="10m", result_ttl=3600)
    return {"job_id": job.get_id()}, 202
