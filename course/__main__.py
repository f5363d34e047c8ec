"""`python3 -m course COMMAND`: the course's one entry point (see --help)."""
import os
import sys

# Said before anything else runs: native Windows has neither fork() (rq's worker)
# nor fcntl (gunicorn), so the course runs in WSL there, or in a dev container.
NATIVE_WINDOWS = """\
course: this course runs on Linux and macOS; on Windows it runs inside WSL
(Windows Subsystem for Linux), because rq's worker needs fork() and gunicorn
needs fcntl, which native Windows does not have.

  1. In PowerShell:   wsl --install     (restart if asked, then open Ubuntu)
  2. In Ubuntu:       sudo apt-get update && sudo apt-get install -y python3 python3-venv git
  3. Clone the course inside WSL (in your home folder, not under /mnt/c) and run
                      python3 -m course run

Or open the repository in a GitHub Codespace or a dev container: it is set up for you."""

if os.name == "nt" or sys.platform in ("win32", "cygwin", "msys"):
    sys.exit(NATIVE_WINDOWS)

from course import bootstrap  # noqa: E402

bootstrap.ensure()  # first run: make .venv and re-run this command inside it

from course.cli import main  # noqa: E402  (needs the packages .venv provides)

raise SystemExit(main())
