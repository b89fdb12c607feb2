"""Installing a Vosk model: every file is checked against the checksum table."""

from __future__ import annotations

import hashlib
import zipfile
from pathlib import Path

import pytest

from speech import models
from speech.models import ModelError, install_vosk, read_sums, verify_tree

FILES = {
    "README": b"fake model for tests\n",
    "am/final.mdl": bytes(range(256)) * 40,
    "conf/model.conf": b"--beam=10.0\n",
    "graph/HCLr.fst": b"\x00\x01fst" * 500,
    "ivector/online_cmvn.conf": b"",
}


def make_model(root: Path) -> Path:
    for rel, data in FILES.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    return root


def make_sums(path: Path) -> Path:
    lines = ["path\tsize_bytes\tsha256\tin_partial_dir"]
    for rel, data in FILES.items():
        lines.append(f"{rel}\t{len(data)}\t{hashlib.sha256(data).hexdigest()}\tyes")
    path.write_text("\n".join(lines) + "\n")
    return path


def flip_byte(path: Path, at: int = 100) -> None:
    data = bytearray(path.read_bytes())
    data[at] ^= 0x01
    path.write_bytes(bytes(data))


def test_the_shared_checksum_table_lists_the_mandarin_model_files() -> None:
    sums = read_sums(models.SHARED_SUMS)
    paths = {s.path for s in sums}
    assert {"am/final.mdl", "graph/HCLr.fst", "conf/model.conf"} <= paths
    assert all(len(s.sha256) == 64 and s.size >= 0 for s in sums)


def test_a_faithful_copy_verifies_and_installs(tmp_path: Path) -> None:
    src = make_model(tmp_path / "src")
    sums = make_sums(tmp_path / "sums.tsv")
    verify_tree(src, read_sums(sums))
    dest = install_vosk(src, dest_dir=tmp_path / "models/vosk-cn", sums_file=sums)
    for rel, data in FILES.items():
        assert (dest / rel).read_bytes() == data
    assert models.vosk_model_installed(dest)


def test_one_changed_byte_is_refused_naming_the_file(tmp_path: Path) -> None:
    src = make_model(tmp_path / "src")
    sums = make_sums(tmp_path / "sums.tsv")
    flip_byte(src / "am/final.mdl")
    with pytest.raises(ModelError, match=r"am/final\.mdl: sha256 .* expected"):
        install_vosk(src, dest_dir=tmp_path / "models/vosk-cn", sums_file=sums)
    assert not (tmp_path / "models/vosk-cn").exists()


def test_truncated_or_missing_file_is_refused(tmp_path: Path) -> None:
    src = make_model(tmp_path / "src")
    sums = make_sums(tmp_path / "sums.tsv")
    (src / "graph/HCLr.fst").write_bytes(FILES["graph/HCLr.fst"][:-1])
    with pytest.raises(ModelError, match=r"graph/HCLr\.fst: size 2499 bytes, expected 2500"):
        verify_tree(src, read_sums(sums))
    (src / "graph/HCLr.fst").unlink()
    with pytest.raises(ModelError, match=r"graph/HCLr\.fst: missing"):
        install_vosk(src, dest_dir=tmp_path / "dest", sums_file=sums)


def test_zip_with_top_folder_installs_and_bad_zip_keeps_the_old_model(tmp_path: Path) -> None:
    src = make_model(tmp_path / "vosk-model-small-cn-0.22")
    sums = make_sums(tmp_path / "sums.tsv")
    good = tmp_path / "good.zip"
    with zipfile.ZipFile(good, "w") as zf:
        for rel in FILES:
            zf.write(src / rel, f"vosk-model-small-cn-0.22/{rel}")
    dest = tmp_path / "models/cn"
    install_vosk(good, dest_dir=dest, sums_file=sums)
    assert (dest / "am/final.mdl").read_bytes() == FILES["am/final.mdl"]

    flip_byte(src / "conf/model.conf", at=3)
    bad = tmp_path / "bad.zip"
    with zipfile.ZipFile(bad, "w") as zf:
        for rel in FILES:
            zf.write(src / rel, f"vosk-model-small-cn-0.22/{rel}")
    with pytest.raises(ModelError, match=r"conf/model\.conf"):
        install_vosk(bad, dest_dir=dest, sums_file=sums)
    assert (dest / "conf/model.conf").read_bytes() == FILES["conf/model.conf"]


def test_not_a_model_and_no_source_are_clear_errors(tmp_path: Path) -> None:
    sums = make_sums(tmp_path / "sums.tsv")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelError, match="not a Vosk model"):
        install_vosk(tmp_path / "empty", dest_dir=tmp_path / "d", sums_file=sums)
    with pytest.raises(ModelError, match="exactly one"):
        install_vosk(None, dest_dir=tmp_path / "d", sums_file=sums)
    (tmp_path / "x.txt").write_text("hello")
    with pytest.raises(ModelError, match="neither a model directory nor a zip"):
        install_vosk(tmp_path / "x.txt", dest_dir=tmp_path / "d", sums_file=sums)


def test_cli_reports_the_bad_file_and_exits_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = make_model(tmp_path / "src")
    sums = make_sums(tmp_path / "sums.tsv")
    flip_byte(src / "README", at=0)
    code = models.main(["install-vosk", "--from", str(src), "--sums", str(sums),
                        "--dest", str(tmp_path / "d")])  # fmt: skip
    assert code == 1
    assert "README: sha256" in capsys.readouterr().err


def test_models_dir_follows_the_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("HOTLINE_MODELS", str(tmp_path))
    monkeypatch.delenv("HOTLINE_VOSK_MODEL", raising=False)
    assert models.vosk_model_dir() == tmp_path / "vosk-model-small-cn-0.22"
    assert not models.vosk_model_installed()
