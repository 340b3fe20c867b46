"""The built HTML: every page present, no error output, glue filled, images resolve;
no warnings, truncated cells or NumPy reprs in the outputs; nothing loaded from
another host (MathJax and the Colab badge are served by the site); the CJK font
stack and the repository URL from ``_config.yml``.

Builds the book from the committed executed notebooks into a temporary
folder (execution is off, so this takes well under a minute).  Each check
runs on each page, so a failure names both.
"""

from __future__ import annotations

import functools
import http.server
import json
import re
import subprocess
import threading
import sys
from pathlib import Path
from types import SimpleNamespace
from urllib.parse import urlparse

import pytest
import yaml
from bs4 import BeautifulSoup

from recnotes.report import site as site_ext

ROOT = Path(__file__).resolve().parents[1]
CONFIG = yaml.safe_load((ROOT / "_config.yml").read_text())


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


def soup_of(site: Path, page: str) -> tuple[BeautifulSoup, BeautifulSoup]:
    """(the whole page, its main content)."""
    soup = BeautifulSoup((site / f"{page}.html").read_text(), "html.parser")
    return soup, soup.find("main") or soup


def outputs(main) -> list:
    """The cell output areas of a page."""
    return main.select("div.cell_output, div.output")


def remote(url: str) -> bool:
    return url.startswith("//") or urlparse(url).scheme not in ("", "file")


@pytest.mark.slow
@pytest.mark.parametrize("page", pages())
def test_no_warning_or_stderr_in_outputs(site, page):
    _, main = soup_of(site, page)
    stderr = main.select(".output.stderr, .stderr")
    assert not stderr, f"{page} shows stderr output: {stderr[0].get_text(' ', strip=True)[:300]!r}"
    for out in outputs(main):
        text = out.get_text(" ")
        hit = re.search(r"\b\w+Warning\b|\bWarning:", text)  # UserWarning, TqdmWarning, ..., "Warning:"
        assert not hit, f"{page} shows a warning in an output: {text[max(0, hit.start() - 100):hit.end() + 200]!r}"


@pytest.mark.slow
@pytest.mark.parametrize("page", pages())
def test_injected_parameters_are_hidden(site, page):
    _, main = soup_of(site, page)
    assert not main.select(".tag_injected-parameters"), f"{page} shows papermill's injected-parameters cell"
    assert "# Parameters" not in main.get_text(), f"{page} shows papermill's injected-parameters cell"


@pytest.mark.slow
@pytest.mark.parametrize("page", pages())
def test_no_truncated_table_cell(site, page):
    _, main = soup_of(site, page)
    cut = [c.get_text(" ", strip=True) for c in main.find_all(["td", "th"])
           if c.get_text(strip=True).endswith(("...", "\u2026"))]
    assert not cut, f"{page} has {len(cut)} table cell(s) cut short, e.g. {cut[:3]}"


@pytest.mark.slow
@pytest.mark.parametrize("page", pages())
def test_no_numpy_scalar_reprs(site, page):
    _, main = soup_of(site, page)
    text = main.get_text(" ")
    hits = sorted(set(re.findall(r"np\.(?:float|int)\d+\([^)]{0,40}\)?", text)))
    assert not hits, f"{page} prints NumPy scalar reprs: {hits[:5]}"


@pytest.mark.slow
@pytest.mark.parametrize("page", pages())
def test_nothing_is_loaded_from_another_host(site, page):
    soup, _ = soup_of(site, page)
    scripts = [s["src"] for s in soup.find_all("script", src=True) if remote(s["src"])]
    sheets = [l["href"] for l in soup.find_all("link", href=True)
              if "stylesheet" in (l.get("rel") or []) and remote(l["href"])]
    images = [i["src"] for i in soup.find_all("img", src=True) if remote(i["src"])]
    assert not scripts + sheets + images, f"{page} loads from another host: {scripts + sheets + images}"
    for s in soup.find_all("script", src=True):  # and every local script is there
        assert (site / page).parent.joinpath(s["src"].split("?")[0]).is_file(), f"{page}: missing {s['src']}"


@pytest.mark.slow
def test_math_is_typeset_by_the_sites_own_mathjax(site):
    soup, _ = soup_of(site, "book/04_math")
    src = [s["src"] for s in soup.find_all("script", src=True) if "mathjax" in s["src"].lower()]
    assert src and all(not remote(s) for s in src), src
    script = (site / "book" / src[0]).resolve()
    assert script == (site / "_static" / site_ext.MATHJAX_PATH).resolve() and script.is_file()
    fonts = site / "_static" / "mathjax" / "es5" / "output" / "chtml" / "fonts" / "woff-v2"
    assert len(list(fonts.glob("*.woff"))) > 20  # CHTML loads its fonts from beside the script
    assert (site / "_static" / "mathjax" / "LICENSE").is_file()


@pytest.mark.slow
def test_cjk_fonts_follow_the_themes_and_the_badge_is_local(site):
    soup, main = soup_of(site, "book/01_background")
    assert re.search(r"[\u4e00-\u9fff]", soup.find("h1").get_text()), "the chapter title has no Chinese"
    css = [l["href"].split("?")[0] for l in soup.find_all("link", href=True) if "recnotes.css" in l["href"]]
    assert css, "the book's CSS is not linked"
    text = (site / "book" / css[0]).read_text()
    for font in ("Noto Sans CJK SC", "Source Han Sans SC", "PingFang SC", "Microsoft YaHei", "WenQuanYi Micro Hei"):
        assert f'"{font}"' in text, font
    badge = [i for i in main.find_all("img") if "colab" in i.get("alt", "").lower()]
    if not CONFIG["repository"]["url"]:  # no repository configured: no badge pointing nowhere
        assert not badge
        return
    assert badge and not remote(badge[0]["src"]) and (site / "book" / badge[0]["src"]).is_file()
    assert badge[0].find_parent("a")["href"].startswith("https://colab.research.google.com/github/")


@pytest.mark.slow
def test_intro_clone_command_uses_the_repository_url(site):
    _, main = soup_of(site, "book/intro")
    code = "\n".join(pre.get_text() for pre in main.find_all("pre"))
    url = (CONFIG["repository"]["url"] or "").rstrip("/")
    want = (url, url.rsplit("/", 1)[1]) if url else site_ext.NO_URL
    assert f"git clone {want[0]} && cd {want[1]}" in code
    assert "{{" not in main.get_text()


@pytest.mark.slow
@pytest.mark.parametrize("page", pages())
def test_no_link_to_a_repository_that_is_not_configured(site, page):
    """Without repository.url, no badge or launch link points at Colab or Binder, and no button
    at a source repository (the papers' own repositories may still be cited)."""
    if CONFIG["repository"]["url"]:
        pytest.skip("a repository is configured")
    soup, _ = soup_of(site, page)
    links = [a["href"] for a in soup.find_all("a", href=True)
             if any(h in a["href"] for h in ("colab.research.google.com", "mybinder.org"))
             or "repository" in (a.get("title", "") + a.get("data-bs-original-title", "")).lower()]
    assert not links, links


def test_repository_substitution_reads_the_theme_options():
    config = SimpleNamespace(html_theme_options={"repository_url": "https://github.com/someone/book.git/"})
    assert site_ext.repository(config) == ("https://github.com/someone/book.git", "book")
    text = "git clone {{ repository_url }} && cd {{ repository_folder }}"
    assert site_ext.substitute(text, config) == "git clone https://github.com/someone/book.git && cd book"
    assert "{{ repository_url }}" in (ROOT / "book" / "intro.md").read_text()  # not typed by hand


#: measures, after the page has loaded at the browser width, every table and image in the
#: article against the article's text column, every table cell against its box (a cut cell
#: ends in an ellipsis or hides its overflow), every figure's shrink (a plotted PNG drawn
#: narrower than its pixels), and looks at the edges of every figure: ink on an edge is a
#: title, label or legend that runs off the picture and is cut there.  What sticks out, is
#: cut or is shrunk is written into the page.
LAYOUT_PROBE = r"""
<script>
function inkAtEdges(img) {
  // the figure's outermost rows and columns: a saved figure has a white margin all round,
  // so a dark pixel there belongs to text or a line cut by the picture's edge
  const canvas = document.createElement('canvas');
  canvas.width = img.naturalWidth; canvas.height = img.naturalHeight;
  const ctx = canvas.getContext('2d');
  ctx.drawImage(img, 0, 0);
  const w = canvas.width, h = canvas.height, found = [];
  const edges = {top: [0, 0, w, 1], bottom: [0, h - 1, w, 1], left: [0, 0, 1, h], right: [w - 1, 0, 1, h]};
  for (const [name, box] of Object.entries(edges)) {
    const px = ctx.getImageData(...box).data;
    let dark = 0;
    for (let i = 0; i < px.length; i += 4) {
      if (px[i + 3] > 128 && (px[i] + px[i + 1] + px[i + 2]) / 3 < 150) dark += 1;
    }
    if (dark > 0) found.push(`${name} (${dark} px)`);
  }
  return found;
}
// a figure's text is drawn at 9 px or more when not shrunk (recnotes.report.plots.glue_figure
// refuses smaller): shrunk below this scale, its smallest text is no longer readable
const MIN_SCALE = 0.7;
window.addEventListener('load', () => {
  const article = document.querySelector('article.bd-article') || document.querySelector('main') || document.body;
  const column = article.getBoundingClientRect();
  const out = [];
  article.querySelectorAll('table, img').forEach((el) => {
    const box = el.getBoundingClientRect();
    const width = el.tagName === 'TABLE' ? el.scrollWidth : box.width;
    if (width > column.width + 1 || box.left < column.left - 1) {
      const head = el.tagName === 'TABLE' ? Array.from(el.querySelectorAll('thead th')).map((c) => c.textContent.trim()).filter((x) => x).join(' | ') : el.getAttribute('src');
      out.push(`${el.tagName.toLowerCase()} ${Math.round(width)} px wide in a ${Math.round(column.width)} px column`
               + ` (${(head || '').trim().slice(0, 120)})`);
    }
  });
  article.querySelectorAll('table').forEach((table) => {
    // a box between the table and the article that hides or scrolls its overflow cuts the
    // table's right-hand columns off the page (a reader sees them only by scrolling)
    for (let box = table.parentElement; box && box !== article; box = box.parentElement) {
      const style = getComputedStyle(box);
      if (['auto', 'scroll', 'hidden', 'clip'].includes(style.overflowX) && box.scrollWidth > box.clientWidth + 1) {
        const head = Array.from(table.querySelectorAll('thead th')).map((c) => c.textContent.trim()).filter((x) => x).join(' | ');
        out.push(`table cut by its box: ${box.scrollWidth} px in ${box.clientWidth} (${head.slice(0, 120)})`);
        break;
      }
    }
  });
  const glued = Array.from(article.querySelectorAll('span.pasted-text'))
    .filter((span) => !span.closest('strong, b, th, h1, h2, h3, h4') && Number(getComputedStyle(span).fontWeight) >= 600);
  if (glued.length) out.push(`${glued.length} glued values set in bold, unlike the prose around them`);
  article.querySelectorAll('td, th').forEach((cell) => {
    // a cell whose text is wider than its box is cut (an ellipsis, or hidden overflow)
    if (cell.scrollWidth > cell.clientWidth + 1) {
      out.push(`table cell cut: "${cell.textContent.trim().slice(0, 40)}" needs ${cell.scrollWidth} px, shows ${cell.clientWidth}`);
    }
  });
  article.querySelectorAll('img').forEach((img) => {
    const src = img.getAttribute('src') || '';
    if (!/_images\/[^/]+\.png$/.test(src)) return;  // plotted figures, not the badge or logos
    if (!img.complete || img.naturalWidth === 0) { out.push(`figure ${src} did not load`); return; }
    const cut = inkAtEdges(img);
    if (cut.length) out.push(`figure ${src} has ink on its edges, cut there: ${cut.join(', ')}`);
    // the browser shrinks a figure wider than the column, and its text with it
    const scale = img.getBoundingClientRect().width / img.naturalWidth;
    if (scale < MIN_SCALE) out.push(`figure ${src} shrunk to ${Math.round(100 * scale)}% of its width`);
  });
  const report = document.createElement('pre');
  report.id = 'layout-report';
  report.textContent = JSON.stringify(out);
  document.body.appendChild(report);
});
</script>
"""


def chromium() -> str | None:
    import shutil

    return next((p for p in (shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome")) if p), None)


@pytest.fixture(scope="module")
def probed_site(site, tmp_path_factory) -> Path:
    """A copy of the site whose pages carry the layout probe."""
    import shutil

    copy = tmp_path_factory.mktemp("probed") / "html"
    shutil.copytree(site, copy)
    for page in pages():
        target = copy / f"{page}.html"
        target.write_text(target.read_text().replace("</body>", LAYOUT_PROBE + "</body>"))
    return copy


@pytest.fixture(scope="module")
def served_site(probed_site):
    """The probed site on a loopback HTTP server (a page opened from a file may not read its
    figures' pixels: each file is an origin of its own)."""
    handler = functools.partial(_QuietHandler, directory=str(probed_site))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:  # no access log in the test output
        pass


@pytest.mark.slow
@pytest.mark.parametrize("page", pages())
def test_tables_and_figures_fit_the_text_column_at_1280px(served_site, page):
    """Opened in headless Chromium 1280 px wide, no table is wider than the article's text
    column (a wider one hides columns behind a scroll bar), no image sticks out of it, and no
    figure has ink on its edges (a label, title or legend cut by the picture's edge)."""
    browser = chromium()
    if browser is None:
        pytest.skip("no Chromium here (apt-get install chromium)")
    proc = subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--window-size=1280,900",
                           "--disable-background-networking", "--disable-component-update", "--disable-sync",
                           "--no-first-run", "--virtual-time-budget=10000", "--dump-dom",
                           f"{served_site}/{page}.html"],
                          capture_output=True, text=True, timeout=120)
    found = BeautifulSoup(proc.stdout, "html.parser").find(id="layout-report")
    assert found is not None, f"the layout probe did not run: {proc.stderr[-500:]}"
    wide = json.loads(found.text)
    assert not wide, f"{page} at 1280 px: " + "; ".join(wide)


def _probe(tmp_path: Path, body: str) -> list[str]:
    """The layout probe's report on one page (``body`` inside the article, 1200 px wide) served
    from ``tmp_path``, in headless Chromium at 1280 px."""
    browser = chromium()
    if browser is None:
        pytest.skip("no Chromium here (apt-get install chromium)")
    (tmp_path / "page.html").write_text("<html><body><article class='bd-article' style='width:1200px'>" + body
                                        + "</article>" + LAYOUT_PROBE + "</body></html>")
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_QuietHandler, directory=str(tmp_path)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        proc = subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--window-size=1280,900",
                               "--disable-background-networking", "--no-first-run", "--virtual-time-budget=5000",
                               "--dump-dom", f"http://127.0.0.1:{server.server_address[1]}/page.html"],
                              capture_output=True, text=True, timeout=120)
    finally:
        server.shutdown()
    found = BeautifulSoup(proc.stdout, "html.parser").find(id="layout-report")
    assert found is not None, f"the layout probe did not run: {proc.stderr[-500:]}"
    return json.loads(found.text)


def _png(path: Path, width_in: float, dpi: int = 100) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(width_in, 2))
    ax.plot([0, 1], [0, 1])
    fig.savefig(path, dpi=dpi, bbox_inches="tight")
    plt.close(fig)


def test_the_probe_fails_a_planted_overflow_shrink_and_cut_column(tmp_path):
    """Five planted faults, each reported once, and nothing else: a glued value in bold (one
    inside bold text is not a fault), a table wider than the text
    column, a figure the browser shrinks to 60% of its width, a table column whose cells are cut
    with an ellipsis, and a table whose right-hand columns its scroll box hides (as chapter 7's
    p column once was); beside a clean table and a figure shown at its own size."""
    images = tmp_path / "_images"
    images.mkdir()
    _png(images / "fits.png", 6)
    _png(images / "shrunk.png", 10)
    natural = int.from_bytes((images / "shrunk.png").read_bytes()[16:20], "big")  # the PNG header's width
    cells = "".join(f"<td>{i:.6f}</td>" for i in range(40))
    boxed = ("<div style='width:300px;overflow-x:auto'><table><thead><tr><th>a</th><th>p</th></tr></thead><tbody>"
             + "<tr>" + "".join(f"<td>{i:.6f}</td>" for i in range(12)) + "</tr></tbody></table></div>")
    clipped = ("<table><thead><tr><th>model</th><th>p</th></tr></thead><tbody><tr><td>EASE</td>"
               "<td style='max-width:30px;overflow:hidden;text-overflow:ellipsis;white-space:nowrap'>0.000123</td>"
               "</tr></tbody></table>")
    report = _probe(tmp_path, "<table><tr><td>a</td><td>0.1</td></tr></table><img src='_images/fits.png'>"
                              f"<table><tr>{cells}</tr></table>"
                              f"<img src='_images/shrunk.png' style='width:{round(0.6 * natural)}px'>" + clipped + boxed
                              + "<p>NDCG <span class='pasted-text' style='font-weight:bold'>0.1</span>, and "
                              "<strong><span class='pasted-text' style='font-weight:bold'>0.2</span></strong></p>")
    assert len(report) == 5, report
    assert "1 glued values set in bold, unlike the prose around them" in report, report
    assert any(r.startswith("table cut by its box") for r in report), report
    assert any(r.startswith("table ") and "px wide" in r for r in report), report
    assert any("shrunk.png shrunk to" in r for r in report), report
    assert any(r.startswith("table cell cut") and "0.000123" in r for r in report), report


def test_the_edge_probe_sees_a_cut_label(tmp_path):
    """The probe's edge check on two real figures: one saved whole, one whose title runs off
    the picture (saved without the tight bounding box); only the second is reported."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    images = tmp_path / "_images"
    images.mkdir()
    for name, tight in (("whole", True), ("cut", False)):
        with plt.style.context("default"):  # matplotlib's own style, whatever another test set
            fig, ax = plt.subplots(figsize=(3, 2))
            ax.plot([0, 1], [0, 1])
            ax.set_title("a title much too long for a figure this narrow, cut at both sides", fontsize=12)
            fig.savefig(images / f"{name}.png", dpi=80, bbox_inches="tight" if tight else None)
        plt.close(fig)
    report = _probe(tmp_path, "<img src='_images/whole.png'><img src='_images/cut.png'>")
    assert len(report) == 1 and "cut.png" in report[0], report
    assert "left" in report[0] or "right" in report[0], report  # the title runs off the sides
