"""nc's benchmark suite (pytest-benchmark): ``python -m pytest bench/ --benchmark-only``.

See bench/README.md. Not collected by the normal test run (``testpaths = tests``).
"""
