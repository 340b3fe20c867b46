"""The built HTML: every page present, no error output, glue filled, images resolve.

Builds the book from the committed executed notebooks into a temporary
folder (execution is off, so this takes well under a minute).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from urllib.parse import urlparse

import pytest
import yaml
from bs4 import BeautifulSoup

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("site")
    jb = Path(sys.executable).with_name("jupyter-book")
    proc = subprocess.run([str(jb), "build", str(ROOT), "--path-output", str(out), "-W", "--keep-going"],
                          capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0, "book build failed (warnings are errors):\n" + proc.stdout[-4000:] + proc.stderr[-2000:]
    return out / "_build" / "html"


def pages() -> list[str]:
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    files = [toc["root"]] + [c["file"] for p in toc.get("parts", []) for c in p.get("chapters", [])]
    return files


@pytest.mark.slow
def test_index_and_every_page_exist(site):
    assert (site / "index.html").is_file()
    for page in pages():
        assert (site / f"{page}.html").is_file(), page


@pytest.mark.slow
@pytest.mark.parametrize("page", pages())
def test_page_is_clean(site, page):
    html = (site / f"{page}.html").read_text()
    soup = BeautifulSoup(html, "html.parser")
    main = soup.find("main") or soup
    text = main.get_text(" ")
    assert "Traceback (most recent call last)" not in text, f"{page} shows a traceback"
    assert not main.select(".output.error, .output.traceback, div.cell_output .traceback"), f"{page} shows an error output"
    assert "{glue" not in text and "glue:" not in text, f"{page} has an unfilled glue reference"
    for img in main.find_all("img"):
        src = img.get("src", "")
        if urlparse(src).scheme in ("http", "https", "data"):
            continue
        target = (site / page).parent / src
        assert target.is_file(), f"{page}: broken image {src}"
