"""`edgecompress run` input checks (exit 2 before any work) and its progress display."""
from __future__ import annotations

import io

from edgecompress.cli import main
from edgecompress.cli.progress import RunProgress
from edgecompress.device.result import BenchmarkResult


def test_unknown_target_is_bad_input_before_any_work(tmp_path, capsys):
    db = tmp_path / "r.db"
    rc = main(["run", "model.onnx", "--target", "pi4-dek", "--db", str(db), "--out", str(tmp_path)])
    err = capsys.readouterr().err
    assert rc == 2 and "unknown target 'pi4-dek'" in err and "local" in err
    assert not db.exists()                                   # nothing was started


def test_no_data_needs_random_calibration(tmp_path, capsys):
    db = tmp_path / "r.db"
    digits = "edgecompress/examples/digits.py:factory"
    rc = main(["run", digits, "--db", str(db), "--out", str(tmp_path)])
    err = capsys.readouterr().err
    assert rc == 2 and "--random-calibration" in err and "--data" in err
    assert not db.exists()


def test_bad_measure_settings_are_usage_errors(tmp_path, capsys):
    assert main(["run", "m.onnx", "--runs", "0", "--db", str(tmp_path / "r.db")]) == 2
    assert "--runs 0: must be >= 1" in capsys.readouterr().err


def test_progress_draws_a_bar_per_target_on_a_terminal():
    out = io.StringIO()
    with RunProgress(["local", "pi"], out, tty=True, width=160) as p:
        p("local", "connect", {"transport": "local"})
        p("pi", "bench", {"artifact": "int8.tflite", "i": 2, "n": 3})
        p("pi", "result", {"artifact": "int8.tflite", "i": 2, "n": 3,
                           "result": BenchmarkResult.from_dict({"status": "ok", "latency_ms": {"p50": 1.234},
                                                                "fidelity": {"accuracy": 0.97}})})
        bar = p.bar.tasks[p.tasks["pi"]]
        assert (bar.completed, bar.total) == (2, 3)
    text = out.getvalue()
    assert "\x1b[" in text                                   # drawn in place by rich
    last = [ln for ln in text.split("\n") if "pi " in ln][-1]
    assert "2/3" in last and "67%" in last and "[2/3] int8.tflite: p50 1.23 ms, accuracy 97.0%" in last
    assert "connecting (local)" in text


def test_progress_writes_plain_lines_when_not_a_terminal():
    out = io.StringIO()
    p = RunProgress(["local"], out, tty=False)
    p("local", "failed", {"error": "TransportError: connection refused"})
    p("*", "compress", {"profiles": ["x86-64-host"]})
    lines = out.getvalue().splitlines()
    assert "\x1b" not in out.getvalue() and len(lines) == 2
    assert lines[0].endswith("local: FAILED: TransportError: connection refused")
    assert lines[1].endswith("compress: compressing for x86-64-host")
