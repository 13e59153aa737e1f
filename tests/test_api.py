"""The Python API as the README shows it: compress -> benchmark -> compare, and bad arguments
stop at the verb with a UsageError before any work."""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from edgecompress import UsageError, benchmark, compare, compress
from edgecompress.deploy.artifacts import expand_artifacts
from edgecompress.manifest import Manifest

README = Path(__file__).resolve().parents[1] / "README.md"


def readme_snippet() -> str:
    text = README.read_text()
    m = re.search(r"<!-- python-api -->\n```python\n(.*?)```", text, re.S)
    assert m, "README has no python-api block"
    return m.group(1)


@pytest.fixture
def model_and_data(tmp_path, torch_digits, monkeypatch):
    import torch

    model, (_, _, x_test, y_test) = torch_digits
    torch.onnx.export(model, (torch.from_numpy(x_test[:1]),), str(tmp_path / "model.onnx"), dynamo=False,
                      opset_version=17, input_names=["x"], output_names=["logits"])
    np.savez(tmp_path / "digits.npz", x=x_test[:300], y=y_test[:300])
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("EDGECOMPRESS_DB", str(tmp_path / "results.db"))
    return tmp_path


@pytest.mark.slow
def test_readme_python_lines_chain(model_and_data, capsys):
    scope: dict = {}
    exec(compile(readme_snippet(), "README.md", "exec"), scope)
    m, res = scope["m"], scope["res"]
    printed = capsys.readouterr().out.split()
    ok = [a for a in m.artifacts if a.status == "ok"]
    assert len(res) == len(ok) >= 4 and all(r.ok for r in res), [r.error for r in res]
    assert all(r.target == "local" and r.runs >= 20 and r.latency_ms.p50 > 0 for r in res)
    comp = compare()
    assert [r.id for r in comp.runs] == [res.run_id] == [printed[1]]
    keys = {(row.target, row.artifact) for row in comp.rows}
    assert keys == {("local", f"{a.precision}.{a.format}") for a in ok}
    by_key = {row.artifact: row for row in comp.rows}
    for r in res:
        assert by_key[r.key].p50_ms == pytest.approx(r.latency_ms.p50)
    assert float(printed[0]) == pytest.approx(comp.rows[0].p50_ms)
    # the same manifest read back from disk, or its records, are accepted too
    again = expand_artifacts(Manifest.read(model_and_data / "out" / "x86-64-host"))
    assert [a.path for a in again] == [a.path for a in expand_artifacts(ok and m)]


@pytest.mark.parametrize("kw, msg", [
    ({"runs": 0}, r"runs 0: input should be greater than or equal to 1"),
    ({"min_seconds": -1}, r"min_seconds -1"),
    ({"threads": 0}, r"threads 0"),
    ({"warmup": -2}, r"warmup -2"),
    ({"delegate": "cuda"}, r"delegate 'cuda' is not in profile"),
    ({"lock_timeout_s": 0}, r"lock_timeout_s must be > 0"),
])
def test_bad_arguments_are_usage_errors_before_any_work(tmp_path, monkeypatch, kw, msg):
    db = tmp_path / "r.db"
    missing = tmp_path / "never-read.onnx"        # not even looked at: the arguments are checked first
    with pytest.raises(UsageError, match=msg):
        benchmark("local", [missing], db=db, **kw)
    assert not db.exists()


def test_unbuilt_manifest_and_unknown_kinds_are_clear_errors(tmp_path):
    m = Manifest(model={}, profile="x86-64-host")
    with pytest.raises(UsageError, match="never written or read; call .write"):
        m.folder
    with pytest.raises(UsageError, match="cannot benchmark a int"):
        expand_artifacts([3])
    with pytest.raises(UsageError, match="not found"):
        benchmark("local", tmp_path / "nope.onnx", store=False)


def test_run_config_is_checked_when_made():
    from edgecompress import RunConfig, run

    with pytest.raises(UsageError, match="eval_samples must be an integer >= 1"):
        RunConfig(eval_samples=0)
    with pytest.raises(UsageError, match=r"unknown measure setting\(s\) \['rnus'\] \(did you mean 'runs'\?\)"):
        RunConfig(measure={"rnus": 3})
    with pytest.raises(UsageError, match="bad measure setting: runs 0"):
        RunConfig(measure={"runs": 0})
    with pytest.raises(UsageError, match="valid options: targets_file, data"):
        run("m.onnx", ["local"], datta="x.npz")
