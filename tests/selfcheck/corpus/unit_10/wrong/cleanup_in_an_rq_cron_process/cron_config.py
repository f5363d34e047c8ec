"""The clean-up's schedule, for rq's cron scheduler: `rq cron cron_config.py`."""
from rq import cron

from utils import delete_old_reports

# Every night at 03:00 (the dyno's local time: UTC on Heroku), on the low queue.
cron.register(delete_old_reports, queue_name="low", cron="0 3 * * *")
