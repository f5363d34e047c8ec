"""The autograder's harness: what every unit's checks stand on, by layer.

Processes and the learner's run:
- processes:  the process table, what runs below a process, stopping it all.
- spawning:   starting learner processes in the sandbox, from the preloaded Python
              (preload.py) where it can; prelude.py runs grader lines before a worker.
- learner:    Learner, one app folder's code run in probes and processes, stopped
              after each check; leaks, hangs and tracebacks become messages.
- diagnose:   a learner process's output turned into one sentence.
- target:     the app folder graded; host: a warm pytest run for `watch`.

pytest:
- plugin:     outcomes, points, the grades line, --results.
- feedback:   failures as plain sentences that name the unit step; the running check.

Helpers, by what they touch:
- web:        the learner's web app over HTTP; flows: the app and its jobs through
              probes (post a report, run its job, check its PDF, read its status).
- jobs, queues, retries, shutdown, faults: rq's state in Redis, retries, stopping
              workers as Heroku does, services that fail on purpose.
- browser:    the page in headless Chromium. failure_sentence: judging an error shown
              to a person.
- storage:    S3 and the PDFs in it. heroku, presigned, requirements: deploy files,
              download links and requirements as Heroku and S3 read them.
"""
