"""The book's site: a Sphinx extension that Jupyter Book loads (``_config.yml``,
``sphinx: extra_extensions``).

* **Math without a CDN.** The pinned MathJax (:data:`recnotes.assets.SITE_ASSETS`,
  fetched into the asset cache once and verified) is copied into the site's
  ``_static/mathjax/``, and ``mathjax_path`` points at it unless the
  configuration chose another one, so the pages typeset their math offline.
* **The repository URL in one place.** ``{{ repository_url }}`` and
  ``{{ repository_folder }}`` in a page's source, code blocks included, become
  ``repository.url`` of ``_config.yml`` (Jupyter Book hands it to the theme as
  ``html_theme_options["repository_url"]``) and the folder that ``git clone``
  makes of it.  While none is configured, the site links to no repository: no
  repository or launch button, and the clone command names a placeholder
  (:data:`NO_URL`); the build says so in one line.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from .. import assets

MATHJAX = "mathjax"
#: ``mathjax_path`` of the site, relative to ``_static/``.
MATHJAX_PATH = f"{MATHJAX}/es5/tex-mml-chtml.js"


def repository(config) -> tuple[str, str]:
    """(url, folder that ``git clone url`` creates) from the theme options Jupyter Book fills."""
    url = (config.html_theme_options or {}).get("repository_url", "").rstrip("/")
    folder = url.rsplit("/", 1)[-1].removesuffix(".git") if url else ""
    return url, folder


#: what the clone command says while no repository is configured: (url, folder)
NO_URL = ("<repository-url>", "<repository-folder>")


def substitute(text: str, config) -> str:
    url, folder = repository(config)
    if not url:
        url, folder = NO_URL
    return text.replace("{{ repository_url }}", url).replace("{{ repository_folder }}", folder)


def _config_inited(app, config) -> None:
    from sphinx.ext.mathjax import MATHJAX_URL

    if config.mathjax_path == MATHJAX_URL:  # Sphinx's default: a CDN
        config.mathjax_path = MATHJAX_PATH
    if repository(config)[0]:
        config.html_theme_options = {**(config.html_theme_options or {}), "use_repository_button": True}
    else:
        from sphinx.util import logging

        options = dict(config.html_theme_options or {})
        options.update(use_repository_button=False, use_issues_button=False, use_edit_page_button=False)
        options.pop("launch_buttons", None)
        config.html_theme_options = options
        logging.getLogger(__name__).info(
            "recnotes: repository.url is not set in _config.yml: the site links to no repository "
            "(no Colab badge, launch or repository button)")


ANSWER = "{{ answer:06_llm }}"  #: where a page shows chapter 6's answer (from its results file)


def answer_markdown(results: Path) -> str:
    """Chapter 6's answer as markdown bullets, read from ``results/06_llm.json`` (written when
    the chapter runs, so the landing page's numbers are the chapter's)."""
    import json

    lines = json.loads((results / "06_llm.json").read_text()).get("answer") or []
    if not lines:
        raise ValueError(f"{results / '06_llm.json'} has no answer: execute chapter 06_llm")
    return "\n".join(f"* {line}" for line in lines)


def _source_read(app, docname: str, source: list[str]) -> None:
    if ANSWER in source[0]:
        results = Path(app.srcdir) / "book" / "results"
        source[0] = source[0].replace(ANSWER, answer_markdown(results))
    if "{{ repository_" in source[0]:
        source[0] = substitute(source[0], app.config)


def _builder_inited(app) -> None:
    if app.builder.format != "html" or app.config.mathjax_path != MATHJAX_PATH:
        return
    from sphinx.errors import ExtensionError

    try:
        assets.fetch(MATHJAX, quiet=True)  # once: later builds only verify the cached copy
    except assets.AssetError as err:
        raise ExtensionError(f"the site's MathJax is not available: {err}") from None


def _build_finished(app, exception: BaseException | None) -> None:
    if exception is not None or app.builder.format != "html" or app.config.mathjax_path != MATHJAX_PATH:
        return
    target = Path(app.outdir) / "_static" / MATHJAX
    shutil.copytree(assets.verify(MATHJAX), target, dirs_exist_ok=True)


def setup(app) -> dict[str, Any]:
    app.setup_extension("sphinx.ext.mathjax")
    app.connect("config-inited", _config_inited)
    app.connect("builder-inited", _builder_inited)
    app.connect("source-read", _source_read)
    app.connect("build-finished", _build_finished)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
