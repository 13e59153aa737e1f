import json

import pytest

from edgecompress.cli import main
from edgecompress.errors import ProfileError, UnknownNameError
from edgecompress.profiles import load_profile, profile_names
from edgecompress.registry import Registry

SHIPPED = ["android-arm64", "jetson-orin-nano", "raspberry-pi-4", "raspberry-pi-5", "x86-64-host"]


def test_shipped_profiles_load_with_real_figures():
    assert set(SHIPPED) <= set(profile_names())
    pi4 = load_profile("raspberry-pi-4")
    assert pi4.hardware.arch == "aarch64" and pi4.hardware.cores == 4
    assert pi4.power.idle_w == pytest.approx(2.7) and pi4.power.load_w == pytest.approx(6.4)
    for name in SHIPPED:
        p = load_profile(name)
        assert p.hardware.peak_gflops > 0 and p.hardware.memory_gbps > 0
        assert p.power.load_w > p.power.idle_w
        assert p.artifacts


def write(tmp_path, text):
    f = tmp_path / "p.yaml"
    f.write_text(text)
    return f


BASE = """name: t
hardware: {arch: aarch64, cores: 4, memory_mb: 1024, peak_gflops: 1, memory_gbps: 1}
power: {idle_w: 1, load_w: 2}
runtimes: [tflite]
artifacts: [{format: tflite, precision: int8}]
"""


def test_unknown_key_names_file_path_and_suggestion(tmp_path):
    f = write(tmp_path, BASE + "measure: {wramup: 3}\n")
    with pytest.raises(ProfileError) as e:
        load_profile(f)
    msg = str(e.value)
    assert str(f) in msg and "measure.wramup" in msg and "did you mean 'warmup'" in msg


def test_bad_value_lists_valid_values(tmp_path):
    f = write(tmp_path, BASE.replace("precision: int8", "precision: int4"))
    with pytest.raises(ProfileError) as e:
        load_profile(f)
    msg = str(e.value)
    assert "artifacts[0].precision" in msg and "'int4'" in msg and "fp32, fp16, dynamic, int8" in msg


def test_format_without_its_runtime_is_an_error(tmp_path):
    f = write(tmp_path, BASE.replace("format: tflite", "format: onnx"))
    with pytest.raises(ProfileError, match="needs runtime 'onnxruntime'"):
        load_profile(f)


def test_malformed_yaml_names_line(tmp_path):
    f = write(tmp_path, "name: [unclosed\n")
    with pytest.raises(ProfileError, match=r"malformed YAML at line \d+"):
        load_profile(f)


def test_unknown_profile_suggests_closest():
    with pytest.raises(ProfileError, match="did you mean 'raspberry-pi-4'"):
        load_profile("raspbery-pi-4")


def test_cli_profiles(tmp_path, capsys):
    assert main(["profiles", "list", "--json"]) == 0
    names = [p["name"] for p in json.loads(capsys.readouterr().out)]
    assert set(SHIPPED) <= set(names)
    assert main(["profiles", "show", "raspberry-pi-5", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["hardware"]["cores"] == 4
    bad = write(tmp_path, BASE + "colour: red\n")
    assert main(["profiles", "validate", str(bad)]) == 2
    assert "unknown key 'colour'" in capsys.readouterr().out


def test_registry_miss_lists_valid_and_closest_and_duplicate_names_places():
    reg = Registry("exporter")
    reg.register("onnx", object())
    reg.register("tflite", "json:dumps")
    assert reg.get("tflite") is json.dumps
    with pytest.raises(UnknownNameError) as e:
        reg.get("tfilte")
    assert "did you mean 'tflite'" in str(e.value) and "onnx, tflite" in str(e.value)
    with pytest.raises(Exception, match=r"registered twice: at .*test_profiles.py:\d+ and at .*test_profiles.py:\d+"):
        reg.register("onnx", object())
