"""The job payload of ``edgecompress.bench`` and its validation (a worker runs nothing unvalidated)."""
from __future__ import annotations

import re
from typing import Literal, Optional, Union

from pydantic import BaseModel, ConfigDict, Field, ValidationError

SHA256 = r"^[0-9a-f]{64}$"
NAME = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$"
JOB_VERSION = 1


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class JobTensor(_Strict):
    """One tensor of the artifact's I/O map (as ``edgecompress.device.execute.io_spec`` writes it)."""
    name: str = Field(min_length=1, max_length=500)
    shape: list[Union[int, str, None]] = Field(max_length=32)
    dtype: str = Field(pattern=r"^[a-z][a-z0-9_]{0,19}$")
    model_name: Optional[str] = Field(None, max_length=500)
    scale: Optional[float] = None
    zero_point: Optional[int] = None


class JobIO(_Strict):
    """The ``__io__`` map sent with the samples: which artifact tensor is which model tensor."""
    model_inputs: list[JobTensor] = Field(max_length=256)
    model_outputs: list[JobTensor] = Field(max_length=256)
    input_map: dict[str, str] = Field(max_length=256)
    output_map: dict[str, str] = Field(max_length=256)
    source_layout: Literal["NCHW", "NHWC"] = "NCHW"
    feedback: dict[str, str] = Field(default_factory=dict, max_length=256)


class JobHost(_Strict):
    """The artifact's check on the host when built: a ``degraded`` build stays degraded on the device."""
    status: Literal["ok", "degraded"] = "ok"
    cosine: Optional[float] = None
    reasons: list[str] = Field(default_factory=list, max_length=64)


class JobArtifact(_Strict):
    sha256: str = Field(pattern=SHA256)
    format: Literal["onnx", "tflite"]
    precision: Optional[Literal["fp32", "fp16", "dynamic", "int8", "as-is"]]   # as-is: a given file, not
                                                                   # compressed; None: a bare file (bench)
    layout: Literal["NCHW", "NHWC"] = "NCHW"
    size_bytes: int = Field(ge=0)
    io: Optional[JobIO] = None             # None: the runner's own inputs (bench), no map needed
    host: JobHost = Field(default_factory=JobHost)

    @property
    def key(self) -> str:
        return f"{self.precision}.{self.format}"


class Job(_Strict):
    v: Literal[1] = JOB_VERSION
    run_id: str = Field(pattern=r"^[0-9]{8}-[0-9]{6}-[0-9a-f]{4,16}$")
    target: str = Field(pattern=NAME)
    profile: str = Field(min_length=1, max_length=500)
    artifacts: list[JobArtifact] = Field(min_length=1, max_length=64)
    inputs: Optional[str] = Field(None, pattern=SHA256)        # .npz by input name; None: random, no fidelity
    reference: Optional[str] = Field(None, pattern=SHA256)     # .npz by output name
    labels: Optional[str] = Field(None, pattern=SHA256)        # .npz, one array "y"
    quality: Optional[dict] = None                             # the profile's quality floor (profiles.Quality)
    input_layout: Literal["NCHW", "NHWC"] = "NCHW"
    measure: dict = Field(default_factory=dict)
    ops: bool = False                                  # a per-operator profile of each artifact too (--ops)
    delegate: Optional[str] = Field(None, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,49}$")   # bench --delegate
    op_profiling: bool = False                         # bench --op-profiling (native mode)
    input_shapes: list[str] = Field(default_factory=list, max_length=64)   # bench --input-shape [NAME=]DIMS
    keep: list[str] = Field(default_factory=list, max_length=64)   # sha256 of artifacts measured ok in the run
                                                                    # being resumed (--resume): not measured again
    store: str = Field("db", max_length=1000)          # "db" (the results database) or file:///FOLDER
    time_limit_s: float = Field(gt=0, le=7 * 24 * 3600)
    submitted_at: float = 0.0
    submitter: str = Field("", max_length=200)


class JobRejected(Exception):
    """The payload is malformed or not for this worker; nothing was run."""


def parse_job(payload, *, own_targets: dict[str, str]) -> Job:
    """A validated :class:`Job` for one of ``own_targets`` ({name: profile}), else :class:`JobRejected`."""
    from ..profiles import Measure, Quality

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
    if job.quality is not None:
        try:
            Quality(**job.quality)
        except (ValidationError, TypeError) as e:
            raise JobRejected(f"malformed job: quality {job.quality}: {str(e).splitlines()[0]}") from None
    if job.inputs is not None and (job.reference is None or any(a.io is None for a in job.artifacts)):
        raise JobRejected("malformed job: inputs without the reference outputs or an artifact's io map")
    if any(not re.fullmatch(SHA256, k) for k in job.keep):
        raise JobRejected("malformed job: keep holds something that is not a sha256")
    if job.input_shapes:
        from ..errors import EdgeCompressError
        from ..models import parse_shapes

        try:
            parse_shapes(job.input_shapes)
        except (EdgeCompressError, ValueError) as e:
            raise JobRejected(f"malformed job: input_shapes {job.input_shapes}: {e}") from None
    if not (job.store == "db" or job.store.startswith("file:///")):
        raise JobRejected(f"malformed job: store {job.store!r}; valid: db, file:///FOLDER")
    return job
