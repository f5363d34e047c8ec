"""What a failed job's error may say to the person waiting (unit 06, step 5):
a short sentence that names the kind of cause, in any words, and gives away
nothing of the internals: no traceback, no exception names, no endpoint,
bucket, key or access key. One judge for every check that reads it, so no
two checks ask for different things."""
import re

# Words that name the kind of cause. The data source's own message names its
# section ('north'), and unit 05 passes exception names on as they are.
CAUSES = {
    "storage": re.compile(r"\bs3\b|storage|\bstor(e|ed|ing)\b|upload|\bsav(e|ed|ing)\b", re.IGNORECASE),
    "data": re.compile(r"\bdata\b|datasource|database|\bquer(y|ies)\b|\bsales\b|\bnorth\b", re.IGNORECASE),
}
# A sentence for each kind, as the lesson's failure_reason gives it.
EXAMPLES = {
    "storage": "The report could not be saved to storage (S3).",
    "data": "the data source for section 'north' is down",
}
# Longer than this is not a sentence for a page: a traceback, or most of one.
LONGEST = 500
# A Python exception's name: a class path (botocore.exceptions.ClientError) or a class.
EXCEPTION_NAME = re.compile(r"\b(botocore|boto3)\b|\b[A-Z]\w*(Error|Exception)\b")
ACCESS_KEY = re.compile(r"\b(AKIA|ASIA)[0-9A-Z]{16}\b")


def names(error, kind):
    """True if the text names the kind of cause ('storage', 'data')."""
    return bool(CAUSES[kind].search(error))


def leaks(error, *, endpoint=None, bucket=None):
    """What of the internals the text gives away, as words for a message."""
    found = []
    port = endpoint.rsplit(":", 1)[-1] if endpoint else ""
    if endpoint and (endpoint.split("://")[-1] in error or "127.0.0.1" in error or (port.isdigit() and port in error)):
        found.append("the S3 endpoint")
    if bucket and bucket in error:
        found.append("the bucket")
    if "reports/" in error:
        found.append("the object key")
    if EXCEPTION_NAME.search(error):
        found.append("a Python exception name")
    if ACCESS_KEY.search(error):
        found.append("an AWS access key")
    return found


def problem(error, kind, after, *, endpoint=None, bucket=None):
    """'' if error is what the lesson asks the page to show after `after` (a failure of
    the kind `kind`), else a message that says what to change."""
    example = EXAMPLES[kind]
    if not isinstance(error, str) or not error.strip():
        return (f"After {after}, the status JSON says failed but gives no error. Add a short sentence that names "
                f"the kind of cause, like {example!r} (failure_reason).")
    if "Traceback (most recent call last)" in error or len(error) > LONGEST:
        return (f"After {after}, the status JSON's error is a whole traceback ({len(error)} characters). Show the "
                f"person waiting a short sentence, like {example!r}, and leave the traceback in the job's failure "
                "record.")
    given_away = leaks(error, endpoint=endpoint, bucket=bucket)
    if given_away:
        return (f"After {after}, the page shows the person waiting {error[:160]!r}: it gives away "
                f"{', '.join(given_away)}. Show a short sentence, like {example!r}, and keep the detail in the job's "
                "failure record.")
    if not names(error, kind):
        return (f"After {after}, the status JSON's error is {error[:160]!r}, which does not say what went wrong. "
                f"Name the kind of cause in a short sentence of your own, like {example!r}.")
    return ""
