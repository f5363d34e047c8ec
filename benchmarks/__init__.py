"""Scripts that measure the course's claims side by side. Run each from the course folder as
`.venv/bin/python -m benchmarks.NAME` (see README.md here); self-checks import them as a package."""
