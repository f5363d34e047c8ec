"""The course's own tooling: the unit manifest, the stage generator, local
services (Redis, S3), and the `python3 -m course` command."""
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
