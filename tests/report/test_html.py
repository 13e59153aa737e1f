"""The HTML report: one self-contained file, opened in a real headless Chromium and looked at."""
from __future__ import annotations

import re
import shutil
import subprocess

import numpy as np
import pytest

from edgecompress.cli import main
from edgecompress.results import ResultsStore

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


def screenshot(html_path, png_path, tmp_path, height=2400):
    """Render ``html_path`` with headless Chromium (no network, fresh profile) to ``png_path``."""
    profile = tmp_path / "chromium-profile"
    profile.mkdir(exist_ok=True)
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           f"--user-data-dir={profile}", f"--screenshot={png_path}", f"--window-size=1280,{height}",
           "--hide-scrollbars", f"file://{html_path}"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert png_path.exists(), f"chromium wrote no screenshot: {proc.returncode} {proc.stderr[-2000:]}"


def assert_self_contained(html: str):
    """No resource is fetched from anywhere: no URL in src/href/url(), no scripts, no imports."""
    assert not re.search(r"https?://|//[a-z0-9.-]+\.[a-z]{2,}/", html, re.I)
    assert not re.search(r"""(src|href)\s*=\s*['"](?!data:|#)""", html, re.I)
    assert "<script" not in html and "@import" not in html and "url(" not in html


def plot_colour_fraction(png_path, top=0, bottom=None) -> float:
    """Fraction of pixels in the band that carry a saturated colour (plot marks, not text or grid)."""
    from PIL import Image

    img = np.asarray(Image.open(png_path).convert("RGB")).astype(int)[top:bottom]
    sat = img.max(axis=2) - img.min(axis=2)
    return float((sat > 60).mean())


@pytest.mark.skipif(not shutil.which("chromium") and not shutil.os.path.exists(CHROMIUM),
                    reason="Chromium is not installed (make system-deps installs it)")
def test_html_report_shows_table_and_plots_in_a_real_browser(tmp_path, measured, store_run, capsys):
    db = tmp_path / "results.db"
    with ResultsStore(db) as store:
        run_id = store_run(store, measured, targets=("local", "lab"))
        # one failed target, to show failures are in the report too
        store.set_target(run_id, "pi4-desk", status="failed", profile="raspberry-pi-4", transport="ssh",
                         error="TransportError: cannot connect to 127.0.0.1:1: connection refused")
    html_path = tmp_path / "report.html"
    assert main(["compare", "--db", str(db), "--html", str(html_path)]) == 0
    assert f"report: {html_path}" in capsys.readouterr().out
    html = html_path.read_text()
    assert_self_contained(html)
    table = html[html.index("<table id='comparison'>"):]
    table = table[:table.index("</table>")]
    assert table.count("<tr class=") == 5                     # 2 targets x 2 artifacts + the failed target
    for target in ("local", "lab"):
        for art in ("fp32.onnx", "dynamic.onnx"):
            assert re.search(rf"<td>{target}</td><td>{re.escape(art)}( <span class='star'|</td>)", table)
    # the recommended artifact of each target is marked (fp32.onnx is measured faster there)
    assert table.count("&#9733; recommended") == 2
    assert "connection refused" in table
    assert html.count("data:image/png;base64,") == 3          # per target with results + across targets
    assert "id='cross-target'" in html and "id='recommendations'" in html

    png = tmp_path / "report.png"
    screenshot(html_path, png, tmp_path)
    from PIL import Image

    img = Image.open(png)
    assert img.size == (1280, 2400)
    gray = np.asarray(img.convert("L"))
    rows_with_ink = (gray < 200).any(axis=1)
    # the table sits near the top: dark text there
    assert rows_with_ink[:600].mean() > 0.3
    # the plots below it: coloured marks (bars, boxes, points) in a real share of the pixels
    assert plot_colour_fraction(png, 500, 1600) > 0.01
    assert 0.02 < 1 - (gray > 245).mean()                      # the page as a whole is not blank
