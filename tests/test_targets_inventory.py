"""Target inventories: the shipped example, where files are found, and errors that say what to fix."""
from __future__ import annotations

from pathlib import Path

import pytest

from edgecompress.cli import main as cli
from edgecompress.errors import TargetError
from edgecompress.targets import load_target, load_targets

EXAMPLE = Path(__file__).resolve().parent.parent / "targets" / "example.yaml"


def test_example_inventory_validates_and_keeps_local():
    targets = load_targets(EXAMPLE)
    assert {"local", "pi4-desk", "pi5-lab", "orin", "pixel7", "pixel7-adb"} <= set(targets)
    assert targets["pi5-lab"].energy == "pi5-pmic" and targets["pixel7"].port == 8022
    assert targets["local"].transport == "local"


def test_inventory_from_environment_variable(monkeypatch, capsys):
    monkeypatch.setenv("EDGECOMPRESS_TARGETS", str(EXAMPLE))
    assert load_target("orin").host == "nvidia@10.0.0.42"
    assert cli(["targets", "list"]) == 0 and "pixel7-adb" in capsys.readouterr().out


def test_bad_inventory_names_file_key_and_valid_values(tmp_path, capsys):
    bad = tmp_path / "t.yaml"
    bad.write_text("targets:\n  - {name: x, profile: raspberry-pi-4, transport: sssh, host: a@b}\n")
    with pytest.raises(TargetError, match=r"t\.yaml: targets\[0\]\.transport: bad value 'sssh' \(did you mean 'ssh'\?\)"):
        load_targets(bad)
    bad.write_text("targets:\n  - {name: x, profile: raspberry-pi-4, host: a@b, hots: c}\n")
    assert cli(["targets", "list", "--targets", str(bad)]) == 2
    assert "unknown key 'hots'" in capsys.readouterr().err
    with pytest.raises(TargetError, match="unknown target 'pi4-dsk'.*did you mean 'pi4-desk'"):
        load_target("pi4-dsk", EXAMPLE)
