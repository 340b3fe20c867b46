"""Pinned assets: fetch once, verify by sha256, actionable errors.

Network-free: a tiny wheel built in the test stands in for PyPI (pip runs
with ``--no-index`` and ``--find-links`` pointing at it), and a tiny tarball
in a ``file://`` folder stands in for the npm registry.
"""

from __future__ import annotations

import hashlib
import io
import shutil
import tarfile
import zipfile
from pathlib import Path

import pytest

from recnotes import assets
from recnotes.assets import Asset, AssetError


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("RECNOTES_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.fixture
def local_index(tmp_path, monkeypatch):
    """A wheel 'toyasset==1.0' holding two files, served by pip from a folder."""
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    payload = {"toy/data/a.txt": b"alpha\n", "toy/data/sub/b.bin": bytes(range(256))}
    whl = wheels / "toyasset-1.0-py3-none-any.whl"
    with zipfile.ZipFile(whl, "w") as zf:
        for name, data in payload.items():
            zf.writestr(name, data)
        zf.writestr("toyasset-1.0.dist-info/METADATA", "Metadata-Version: 2.1\nName: toyasset\nVersion: 1.0\n")
        zf.writestr("toyasset-1.0.dist-info/WHEEL", "Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
        zf.writestr("toyasset-1.0.dist-info/RECORD", "")
    monkeypatch.setenv("PIP_CONFIG_FILE", "/dev/null")
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(wheels))
    asset = Asset("toy", "a toy asset", "toyasset==1.0", "toy/data/",
                  {rel.removeprefix("toy/data/"): hashlib.sha256(d).hexdigest() for rel, d in payload.items()})
    monkeypatch.setitem(assets.ASSETS, "toy", asset)
    return asset, payload


def test_fetch_extracts_and_verifies_then_reuses(cache, local_index, monkeypatch):
    asset, payload = local_index
    folder = assets.fetch("toy", quiet=True)
    assert folder == cache / "toy"
    for rel, data in payload.items():
        assert (folder / rel.removeprefix("toy/data/")).read_bytes() == data
    # A second fetch must not download again.
    def no_download(*a, **k):
        raise AssertionError("downloaded twice")
    monkeypatch.setattr(assets, "_download_wheel", no_download)
    assert assets.fetch("toy", quiet=True) == folder


def test_deleted_file_is_fetched_again(cache, local_index):
    folder = assets.fetch("toy", quiet=True)
    (folder / "a.txt").unlink()
    assets.fetch("toy", quiet=True)
    assert (folder / "a.txt").read_bytes() == b"alpha\n"


def test_corrupted_file_is_named_deleted_and_never_loaded(cache, local_index):
    folder = assets.fetch("toy", quiet=True)
    bad = folder / "sub" / "b.bin"
    bad.write_bytes(b"tampered")
    with pytest.raises(AssetError) as err:
        assets.fetch("toy", quiet=True)
    assert str(bad) in str(err.value) and "checksum mismatch" in str(err.value)
    assert not bad.exists()
    with pytest.raises(AssetError):
        assets.locate("toy", "sub/b.bin")
    # The next run fetches it again.
    assets.fetch("toy", quiet=True)
    assert bad.read_bytes() == bytes(range(256))


def test_no_network_and_no_cache_says_what_to_run(cache, local_index, tmp_path, monkeypatch):
    monkeypatch.setenv("PIP_FIND_LINKS", str(tmp_path / "nowhere"))
    with pytest.raises(AssetError) as err:
        assets.fetch("toy", quiet=True)
    msg = str(err.value)
    assert "python -m recnotes.assets fetch toy" in msg and "no cached copy" in msg


def test_unknown_asset_lists_known_ones(cache):
    with pytest.raises(AssetError, match="unknown asset 'nope'.*ml-100k"):
        assets.fetch("nope")


def test_missing_asset_in_cache_is_reported_by_locate(cache):
    with pytest.raises(AssetError, match="not in the cache.*recnotes.assets fetch ml-100k"):
        assets.locate("ml-100k")


def test_cli_list_and_errors(cache, capsys):
    assert assets._main(["list"]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in assets.ASSETS)
    assert assets._main(["path", "nope"]) == 1
    assert "unknown asset" in capsys.readouterr().err


def test_pinned_ml100k_matches_the_design_checksums():
    """The registry pins exactly the checksums that DESIGN.md lists."""
    design = (Path(__file__).resolve().parents[2] / "shared" / "DESIGN.md")
    if not design.is_file():
        pytest.skip("DESIGN.md not beside the checkout")
    text = design.read_text()
    for rel, sha in assets.ASSETS["ml-100k"].files.items():
        assert sha in text, rel
    assert assets.ASSETS["smollm2-135m-instruct-gguf"].files["SmolLM2-135M-Instruct.Q4_1.gguf"] in text
    assert assets.ASSETS["all-minilm-l6-v2"].files["model.safetensors"] in text


def test_real_ml100k_cache_copy_verifies(tmp_path, monkeypatch):
    """The default cache (filled by `make test`) holds verified ML-100K files."""
    folder = assets.fetch("ml-100k", quiet=True)
    for rel, sha in assets.ASSETS["ml-100k"].files.items():
        assert assets.sha256_of(folder / rel) == sha
    # A copy in another cache verifies too, and a truncated copy does not.
    monkeypatch.setenv("RECNOTES_CACHE", str(tmp_path))
    shutil.copytree(folder, tmp_path / "ml-100k")
    assert assets.verify("ml-100k") == tmp_path / "ml-100k"
    inter = tmp_path / "ml-100k" / "ml-100k.inter"
    inter.write_bytes(inter.read_bytes()[:-10])
    with pytest.raises(AssetError, match="ml-100k.inter"):
        assets.verify("ml-100k")


# ------------------------------------------------------------------ npm tarballs (the site's MathJax)
@pytest.fixture
def local_npm(tmp_path, monkeypatch):
    """A tarball 'toyjs@1.0' laid out as the npm registry serves it, from a file:// registry."""
    payload = {"package/dist/a.js": b"console.log(1)\n", "package/LICENSE": b"MIT\n"}
    folder = tmp_path / "registry" / "toyjs" / "-"
    folder.mkdir(parents=True)
    tgz = folder / "toyjs-1.0.tgz"
    with tarfile.open(tgz, "w:gz") as tf:
        for name, data in payload.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    monkeypatch.setenv("npm_config_registry", (tmp_path / "registry").as_uri())
    asset = Asset("toyjs", "a toy npm asset", "", "package/",
                  {rel.removeprefix("package/"): hashlib.sha256(d).hexdigest() for rel, d in payload.items()},
                  npm="toyjs@1.0", archive_sha256=assets.sha256_of(tgz))
    monkeypatch.setitem(assets.SITE_ASSETS, "toyjs", asset)
    return asset, tgz


def test_npm_asset_is_fetched_verified_and_reused(cache, local_npm, monkeypatch):
    asset, tgz = local_npm
    folder = assets.fetch("toyjs", quiet=True)
    assert (folder / "dist" / "a.js").read_bytes() == b"console.log(1)\n"
    assert asset.source == "npm:toyjs@1.0"
    monkeypatch.setattr(assets, "_download_npm", lambda *a: pytest.fail("downloaded twice"))
    assert assets.fetch("toyjs", quiet=True) == folder


def test_npm_tarball_with_another_checksum_is_refused(cache, local_npm):
    asset, tgz = local_npm
    tgz.write_bytes(tgz.read_bytes() + b"\0")
    with pytest.raises(AssetError, match="checksum mismatch.*nothing was extracted"):
        assets.fetch("toyjs", quiet=True)
    assert not (cache / "toyjs" / "dist" / "a.js").exists()


def test_npm_registry_unreachable_says_what_to_run(cache, local_npm, tmp_path, monkeypatch):
    monkeypatch.setenv("npm_config_registry", (tmp_path / "nowhere").as_uri())
    with pytest.raises(AssetError, match="(?s)no cached copy.*python -m recnotes.assets fetch toyjs"):
        assets.fetch("toyjs", quiet=True)


def test_site_assets_are_pinned_and_kept_apart_from_the_books_data():
    mathjax = assets.SITE_ASSETS["mathjax"]
    assert mathjax.npm == "mathjax@3.2.2" and len(mathjax.archive_sha256) == 64
    assert "es5/tex-mml-chtml.js" in mathjax.files and "LICENSE" in mathjax.files
    assert all(len(sha) == 64 for sha in mathjax.files.values())
    assert not set(assets.SITE_ASSETS) & set(assets.ASSETS)
