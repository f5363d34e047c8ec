"""The web app: a page with a button, and the route that starts a report."""
from flask import Flask, jsonify, render_template
from rq import Queue

from utils import make_report
from worker import conn

app = Flask(__name__)
queue = Queue("default", connection=conn)


@app.get("/")
def index():
    return render_template("index.html")


import threading


@app.post("/report")
def create_report():
    job = queue.enqueue(make_report)
    threading.Thread(target=make_report).start()  # start it right away as well
    return jsonify(job_id=job.id), 202
