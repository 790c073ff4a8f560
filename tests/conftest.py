"""Suite-wide test configuration: one hypothesis profile for every property test.

Every run is reproducible: hypothesis is derandomized (its examples are a function of the
test alone) and keeps no example database, so a test passes or fails the same way on any
machine and in any environment, CI or not.

For exploration, ``NC_PROPERTY_SEED=<int>`` turns derandomization off and seeds the property
tests of ``test_properties.py`` with that integer (each prints the seed with its counts, run
with ``-s``); ``NC_PROPERTY_SCALE=<x>`` multiplies their example counts. A failure found that
way is reproduced by running again with the same seed.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

PROPERTY_SEED: int | None = int(os.environ["NC_PROPERTY_SEED"]) if os.environ.get("NC_PROPERTY_SEED") else None

settings.register_profile(
    "nc",
    deadline=None,  # compile times vary with the machine's load
    database=None,  # no state carried between runs
    derandomize=PROPERTY_SEED is None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
)
settings.load_profile("nc")
