"""Device profiles: what a class of device is, and what to build and measure for it.

Profiles are YAML files in the project's ``profiles/`` folder (found by name) or
any user file (found by path). Loading validates every key; see ``schema.py``.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, Optional

from pydantic import Field, field_validator, model_validator

from .device.meters import METERS as METER_NAMES
from .errors import ProfileError
from .exporters import CAPABILITIES
from .registry import agent_delegates, suggest
from .schema import Strict, load_yaml, validate

PROFILES_DIR = Path(__file__).resolve().parent.parent / "profiles"

# name lists from their one source: the exporters' capability table, the meters, the agents
Format = Literal[tuple(dict.fromkeys(c.format for c in CAPABILITIES))]
Precision = Literal[tuple(dict.fromkeys(c.precision for c in CAPABILITIES))]
Runtime = Literal["tflite", "onnxruntime"]
Meter = Literal[("auto", *METER_NAMES, "none")]
Delegate = Literal[agent_delegates()]
Calibration = Literal["minmax", "entropy", "percentile"]

#: which runtime runs which format
RUNTIME_OF_FORMAT = {"onnx": "onnxruntime", "tflite": "tflite"}


class Hardware(Strict):
    arch: Literal["aarch64", "x86_64", "armv7l"]
    cores: int = Field(gt=0)
    memory_mb: int = Field(gt=0)
    peak_gflops: float = Field(gt=0, description="peak FP32 CPU throughput, for estimates")
    memory_gbps: float = Field(gt=0, description="sustained memory bandwidth, for estimates")
    accelerators: list[str] = []


class Power(Strict):
    idle_w: float = Field(ge=0)
    load_w: float = Field(gt=0)

    @model_validator(mode="after")
    def _load_above_idle(self):
        if self.load_w < self.idle_w:
            raise ValueError(f"load_w ({self.load_w}) must be >= idle_w ({self.idle_w})")
        return self


class ArtifactSpec(Strict):
    format: Format
    precision: Precision
    calibration: Calibration = "minmax"
    # static INT8 ONNX only (what `tune` searches; the defaults are the profile's usual artifact)
    per_channel: bool = True
    activation_type: Literal["int8", "uint8"] = "int8"
    weight_type: Literal["int8", "uint8"] = "int8"
    quant_format: Literal["qdq", "qoperator"] = "qdq"
    keep_float: list[str] = Field([], description="node names left in float (mixed precision)")

    def quant_settings(self) -> dict:
        """The INT8 settings that differ from the defaults (empty for the usual artifact)."""
        default = {"per_channel": True, "activation_type": "int8", "weight_type": "int8", "quant_format": "qdq",
                   "keep_float": []}
        return {k: getattr(self, k) for k, v in default.items() if getattr(self, k) != v}

    @property
    def key(self) -> str:
        return f"{self.precision}.{self.format}"


class Measure(Strict):
    warmup: int = Field(10, ge=0)
    runs: int = Field(100, ge=1)
    min_seconds: float = Field(2.0, ge=0)
    threads: int = Field(1, ge=1)
    cooldown_s: float = Field(0.0, ge=0)
    timeout_s: float = Field(600.0, gt=0, description="wall-clock limit for one artifact's benchmark")


class Energy(Strict):
    meter: Meter = "auto"
    command: Optional[str] = Field(None, description="for meter: command, prints watts or joules")

    @model_validator(mode="after")
    def _command_needs_command(self):
        if self.meter == "command" and not self.command:
            raise ValueError("meter 'command' needs a 'command' that prints watts or joules")
        return self


class OutputQuality(Strict):
    min_cosine: Optional[float] = Field(None, ge=-1, le=1)
    min_sqnr_db: Optional[float] = None
    min_top1_agreement: Optional[float] = Field(None, ge=0, le=1)


class Quality(Strict):
    """The quality floor: below it an artifact that builds and runs is ``degraded``."""
    min_cosine: float = Field(0.95, ge=-1, le=1, description="every output's cosine over all samples")
    min_sqnr_db: Optional[float] = Field(None, description="every output's SQNR (off by default)")
    min_top1_agreement: float = Field(0.9, ge=0, le=1, description="class-score outputs")
    max_accuracy_drop: float = Field(5.0, ge=0, description="points of accuracy against the source, with labels")
    outputs: dict[str, OutputQuality] = {}


Objective = Literal["p50", "p90", "energy", "size", "peak_rss"]


class Budget(Strict):
    """What the recommendation (and ``tune``) may trade away, and what it optimises."""
    objective: Objective = "p50"
    max_accuracy_drop: float = Field(1.0, ge=0, description="percentage points below the source model")
    min_agreement: float = Field(0.97, ge=0, le=1, description="top-1 agreement with the source model")
    min_cosine: float = Field(0.99, ge=-1, le=1, description="cosine of the outputs with the source model")
    max_memory_mb: Optional[float] = Field(None, gt=0, description="peak RSS limit (default: the device's memory)")


class DeviceProfile(Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    description: str = ""
    hardware: Hardware
    power: Power
    runtimes: list[Runtime] = Field(min_length=1)
    delegates: list[Delegate] = ["xnnpack"]
    artifacts: list[ArtifactSpec] = Field(min_length=1)
    passes: list[dict[str, Any]] = []
    measure: Measure = Measure()
    energy: Energy = Energy()
    quality: Quality = Quality()
    batch: Optional[int] = Field(None, ge=1, description="fix the batch dim of ONNX artifacts (default: keep the source's)")
    budget: Budget = Budget()

    @field_validator("passes")
    @classmethod
    def _passes_named(cls, v):
        for i, p in enumerate(v):
            if "pass" not in p:
                raise ValueError(f"passes[{i}] needs a 'pass' key naming the pass")
        return v

    @model_validator(mode="after")
    def _formats_have_runtimes(self):
        for spec in self.artifacts:
            need = RUNTIME_OF_FORMAT[spec.format]
            if need not in self.runtimes:
                raise ValueError(
                    f"artifact {spec.precision}.{spec.format} needs runtime {need!r}, "
                    f"which is not in runtimes {self.runtimes}")
        seen = set()
        for spec in self.artifacts:
            if spec.key in seen:
                raise ValueError(f"artifact {spec.key} is listed twice")
            seen.add(spec.key)
        return self


def profile_names() -> list[str]:
    return sorted(p.stem for p in PROFILES_DIR.glob("*.yaml"))


def _resolve(name_or_path: str | Path) -> Path:
    p = Path(name_or_path)
    if p.suffix in (".yaml", ".yml") or p.exists() or "/" in str(name_or_path):
        if not p.exists():
            raise ProfileError(f"{p}: profile file not found")
        return p
    candidate = PROFILES_DIR / f"{name_or_path}.yaml"
    if candidate.exists():
        return candidate
    names = profile_names()
    raise ProfileError(
        f"unknown profile {str(name_or_path)!r}{suggest(str(name_or_path), names)}; "
        f"valid: {', '.join(names)} (or a path to a profile YAML file)")


def load_profile(name_or_path: str | Path | DeviceProfile) -> DeviceProfile:
    """Load a profile by name (``profiles/NAME.yaml``) or by path; validate everything."""
    if isinstance(name_or_path, DeviceProfile):
        return name_or_path
    path = _resolve(name_or_path)
    data = load_yaml(path, ProfileError)
    profile = validate(DeviceProfile, data, str(path), ProfileError)
    if profile.passes:
        from .passes import validate_pass_specs

        validate_pass_specs(profile.passes, source=str(path), error=ProfileError)
    return profile


def list_profiles() -> list[DeviceProfile]:
    return [load_profile(PROFILES_DIR / f"{n}.yaml") for n in profile_names()]
