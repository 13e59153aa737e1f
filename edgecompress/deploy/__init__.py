"""Deployment: the device session (lock, sync by hash, retries, time-outs; the same for every
mode), the agents that measure on a device (the Python runner, native ``benchmark_model``),
artifact resolution, target diagnosis, and the ``benchmark`` verb."""
from .agents import DeviceAgent, PythonAgent
from .artifacts import expand_artifacts, file_sha256
from .bench import BenchResults, benchmark
from .diagnose import check_target
from .session import DeviceSession

__all__ = ["DeviceSession", "DeviceAgent", "PythonAgent", "BenchResults", "benchmark", "check_target",
           "expand_artifacts", "file_sha256"]
