"""recnotes.report.glue: plain numbers, and the same glue data with or without myst-nb."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from recnotes.report.glue import GLUE_PREFIX, glue, plain


def glued(value):
    from IPython.utils.capture import capture_output

    with capture_output() as out:
        assert glue("x", value) is None
    return [(o.data, o.metadata) for o in out.outputs]


def test_plain_turns_numpy_scalars_into_python_numbers():
    assert type(plain(np.float64(0.5))) is float and type(plain(np.int64(3))) is int
    assert type(plain(np.array(2.0))) is float and plain("text") == "text"


def test_glue_writes_what_myst_nb_writes_and_needs_no_myst_nb(shell, monkeypatch):
    myst_nb = pytest.importorskip("myst_nb")
    from IPython.utils.capture import capture_output

    with capture_output() as out:
        myst_nb.glue("x", 0.25, display=False)  # myst-nb's own, the reference
    reference = [(o.data, o.metadata) for o in out.outputs]
    assert glued(np.float64(0.25)) == reference
    monkeypatch.setitem(sys.modules, "myst_nb", None)  # `import myst_nb` now fails, as on Colab
    assert glued(np.float64(0.25)) == reference
    assert reference == [({GLUE_PREFIX + "text/plain": "0.25"}, {"scrapbook": {"name": "x", "mime_prefix": GLUE_PREFIX}})]


def test_glue_outside_ipython_and_without_myst_nb_does_nothing(monkeypatch, capsys):
    from IPython.core.interactiveshell import InteractiveShell

    monkeypatch.setattr(InteractiveShell, "initialized", classmethod(lambda cls: False))  # a plain script
    monkeypatch.setitem(sys.modules, "myst_nb", None)
    glue("x", 1.5)
    assert capsys.readouterr() == ("", "")
