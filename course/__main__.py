"""`python3 -m course COMMAND`: the course's one entry point (see --help)."""
from course import bootstrap

bootstrap.ensure()  # first run: make .venv and re-run this command inside it

from course.cli import main  # noqa: E402  (needs the packages .venv provides)

raise SystemExit(main())
