"""The portal's speed measurement: data sets, bare baselines and the ratio runner."""

import os

# The portal run by the benchmark keeps its instance files, among them the task queue that the measured
# orders write to, in a folder of its own (bench/run.py checks it is so, and empties that queue after use).
INSTANCE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "instance", "bench")
os.environ.setdefault("INSTANCE_PATH", INSTANCE)
