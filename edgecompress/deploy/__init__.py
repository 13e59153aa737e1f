"""Deployment: the device session (lock, sync by hash, retries, time-outs), the agents that
measure on a device (the Python runner, native ``benchmark_model``), and target diagnosis."""
from .session import DeviceSession, benchmark, file_sha256

__all__ = ["DeviceSession", "benchmark", "file_sha256"]
