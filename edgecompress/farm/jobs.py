"""The job payload of ``edgecompress.bench`` and its validation (a worker runs nothing unvalidated)."""
from __future__ import annotations

from typing import Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, ValidationError

SHA256 = r"^[0-9a-f]{64}$"
NAME = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$"
JOB_VERSION = 1


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class JobArtifact(_Strict):
    sha256: str = Field(pattern=SHA256)
    format: Literal["onnx", "tflite"]
    precision: Literal["fp32", "fp16", "dynamic", "int8"]
    layout: Literal["NCHW", "NHWC"] = "NCHW"
    size_bytes: int = Field(ge=0)

    @property
    def key(self) -> str:
        return f"{self.precision}.{self.format}"


class Job(_Strict):
    v: Literal[1] = JOB_VERSION
    run_id: str = Field(pattern=r"^[0-9]{8}-[0-9]{6}-[0-9a-f]{4,16}$")
    target: str = Field(pattern=NAME)
    profile: str = Field(min_length=1, max_length=500)
    artifacts: list[JobArtifact] = Field(min_length=1, max_length=64)
    inputs: Optional[str] = Field(None, pattern=SHA256)        # None: the runner's random inputs, no fidelity
    reference: Optional[str] = Field(None, pattern=SHA256)
    labels: Optional[str] = Field(None, pattern=SHA256)
    input_layout: Literal["NCHW", "NHWC"] = "NCHW"
    measure: dict = Field(default_factory=dict)
    store: str = Field("db", max_length=1000)          # "db" (the results database) or file:///FOLDER
    time_limit_s: float = Field(gt=0, le=7 * 24 * 3600)
    submitted_at: float = 0.0
    submitter: str = Field("", max_length=200)


class JobRejected(Exception):
    """The payload is malformed or not for this worker; nothing was run."""


def parse_job(payload, *, own_targets: dict[str, str]) -> Job:
    """A validated :class:`Job` for one of ``own_targets`` ({name: profile}), else :class:`JobRejected`."""
    from ..profiles import Measure

    if not isinstance(payload, dict):
        raise JobRejected(f"payload is a {type(payload).__name__}, not a JSON object")
    try:
        job = Job.model_validate(payload)
    except ValidationError as e:
        errs = "; ".join(f"{'.'.join(map(str, x['loc'])) or '(top)'}: {x['msg']}" for x in e.errors()[:5])
        raise JobRejected(f"malformed job: {errs}") from None
    if job.target not in own_targets:
        raise JobRejected(f"job for target {job.target!r}, which is not in this worker's inventory "
                          f"({', '.join(sorted(own_targets))})")
    try:
        Measure(**job.measure)
    except (ValidationError, TypeError) as e:
        raise JobRejected(f"malformed job: measure {job.measure}: {str(e).splitlines()[0]}") from None
    if not (job.store == "db" or job.store.startswith("file:///")):
        raise JobRejected(f"malformed job: store {job.store!r}; valid: db, file:///FOLDER")
    return job
