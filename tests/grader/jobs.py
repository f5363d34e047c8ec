"""Read rq jobs the learner's code enqueued, whatever serializer it used."""
from rq.job import Job
from rq.serializers import DefaultSerializer, JSONSerializer

SERIALIZERS = (DefaultSerializer, JSONSerializer)


def fetch(redis, job_id):
    """The Job with this id, or None. Tries pickle, then JSON (unit 08)."""
    for serializer in SERIALIZERS:
        try:
            job = Job.fetch(str(job_id), connection=redis, serializer=serializer)
            job.func_name  # forces the payload to be decoded with this serializer
            return job
        except Exception:
            continue
    return None


def status(job):
    value = job.get_status(refresh=True)
    return getattr(value, "value", value)


def result(job):
    try:
        return job.return_value(refresh=True)
    except Exception:
        return None


def error(job):
    try:
        latest = job.latest_result()
        return latest.exc_string if latest else (job.exc_info or "")
    except Exception:
        return job.exc_info or ""
