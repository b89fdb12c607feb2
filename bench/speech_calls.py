"""Spoken matters in real calls: how fast the draft is ready, and how often it routes the call.

Against a running stack whose config asks callers to speak (``speech.mode: after_choice``)::

    .venv/bin/hotline up --config my.yaml --instance demo --demo-agents
    .venv/bin/python bench/speech_calls.py --config my.yaml --calls 16 --stagger 4

or against an instance of its own, brought up and down by the script (root; ``make bench``)::

    sudo .venv/bin/python bench/speech_calls.py --own --calls 16 --stagger 4

Each caller (sipp, G.711 RTP made from a hotline wav, silence after the words like a phone)
presses ``--digit`` during the greeting and speaks after the speak-demand prompt; calls start
``--stagger`` seconds apart, so about ``utterance / stagger`` utterances are decoded at once.
Printed: socket release → draft (the speech service's ``latency_s``), end of speech → draft
(+ ``silence_ms`` of end-pointing), drafts the IVR had in time (``DRAFT_WAIT_S``), calls routed
to a spoken seat, the seat accuracy against expected.tsv, wall time.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path

from cli.commands.call import fetch_draft, place_call, prompt_seconds
from hotline.config import ConfigError, load_config
from speech.pcap import with_trailing_silence
from testphones.sipp import CallerSpec, key_steps, prepare_media

REPO = Path(__file__).resolve().parents[1]
AUDIO = REPO.parent / "shared" / "audio" / "hotline"
DRAFT_WAIT_S = 8.0
"""agi_scripts.speech_listen.DRAFT_WAIT_S."""


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def expected_seats(config: object) -> dict[str, str]:
    """expected.tsv id → seat id of the first demand ('' when none is expected)."""
    names = {s.name.removesuffix("专席").removesuffix("席"): s.id for s in config.seats}  # type: ignore[attr-defined]
    out = {}
    lines = (AUDIO / "expected.tsv").read_text(encoding="utf-8").splitlines()
    head = lines[0].split("\t")
    for line in lines[1:]:
        row = dict(zip(head, line.split("\t"), strict=False))
        first = (row.get("seat") or "").split(";")[0]
        out[row["id"]] = names.get(first, "")
    return out


async def run(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    if config.speech.mode != "after_choice":
        print("error: the config must set speech.mode: after_choice", file=sys.stderr)
        return 2
    wavs = sorted(AUDIO.glob("dev??.wav"))
    if not wavs:
        print(f"error: no hotline utterances in {AUDIO}", file=sys.stderr)
        return 2
    work = Path(args.workdir).resolve() / time.strftime("%Y%m%d-%H%M%S")
    speak_after = (prompt_seconds("speak-demand") or 6.0) + 1.0
    specs = []
    for i in range(args.calls):
        wav = wavs[i % len(wavs)]
        folder = work / f"call{i:03d}"
        speech = with_trailing_silence(wav, folder / "speech.wav")
        plan, media, media_s = prepare_media(
            key_steps(args.digit, 4.0), folder, speech, speak_after
        )
        caller = f"1370000{i:04d}"
        spec = CallerSpec(
            config.sip.host, config.sip.port, config.hotline.number, caller,
            digits=plan, hold_s=36.0, media_pcap=media, media_s=media_s,
        )  # fmt: skip
        specs.append((wav.stem, spec, folder))

    async def one(i: int, spec: CallerSpec, folder: Path) -> dict:
        await asyncio.sleep(i * args.stagger)
        return await place_call(config, spec, folder / "sipp", timeout_s=240)

    started = time.monotonic()
    calls = await asyncio.gather(*(one(i, s, f) for i, (_, s, f) in enumerate(specs)))
    wall = time.monotonic() - started
    want = expected_seats(config)
    latencies, in_time, spoken_route, seat_right, missing = [], 0, 0, 0, 0
    for (wav_id, _spec, _f), call in zip(specs, calls, strict=True):
        draft = await fetch_draft(config, str(call.get("linkedid") or ""), 30.0)
        if not draft or "latency_s" not in draft:
            missing += 1
            continue
        latency = float(draft["latency_s"])
        latencies.append(latency)
        in_time += latency < DRAFT_WAIT_S
        spoken_route += bool(call.get("seat")) and call.get("seat") != config.general_seat.id
        seat_right += (draft.get("seat") or "") == want.get(wav_id, "")
    n = len(specs)
    silence = config.speech.silence_ms / 1000
    print(f"{n} spoken calls, {args.stagger:g} s apart, wall {wall:.0f} s, no draft: {missing}")
    if latencies:
        p50, p95 = statistics.median(latencies), pct(latencies, 0.95)
        print(
            f"socket release → draft  p50 {p50:.2f} s  p95 {p95:.2f} s  max {max(latencies):.2f} s"
        )
        print(f"end of speech → draft   p50 {p50 + silence:.2f} s  p95 {p95 + silence:.2f} s"
              f"  (+{silence:.1f} s end-pointing)")  # fmt: skip
    print(f"draft in time for the IVR ({DRAFT_WAIT_S:g} s): {in_time}/{n}")
    print(f"routed to a spoken seat (key {args.digit}): {spoken_route}/{n}")
    print(f"draft seat as expected.tsv: {seat_right}/{n}")
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--config", default="hotline.yaml")
    ap.add_argument("--calls", type=int, default=16)
    ap.add_argument("--stagger", type=float, default=4.0, help="seconds between call starts")
    ap.add_argument("--digit", default="0", help="key pressed during the greeting")
    ap.add_argument("--workdir", default="run/bench-speech-calls")
    ap.add_argument("--own", action="store_true",
                    help="start an own instance (root): hotline.yaml with speech after the "
                    "key, ports moved by --offset, sipp phones for the agents")  # fmt: skip
    ap.add_argument("--offset", type=int, default=31000, help="port offset for --own")
    args = ap.parse_args(argv)
    if not 1 <= args.calls <= 200 or args.stagger < 0:
        ap.error("--calls 1..200 and --stagger >= 0")
    try:
        if args.own:
            return own_instance(args)
        return asyncio.run(run(args))
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 2


def own_instance(args: argparse.Namespace) -> int:
    """:func:`run` against an instance of its own, brought up and down here (``make bench``)."""
    import os
    import tempfile

    import yaml

    from hotline import safe_yaml
    from runtime.stack import Stack
    from testphones.sipp import offset_config, start_phones

    if os.geteuid() != 0:
        print("--own needs root: Asterisk runs in a chroot", file=sys.stderr)
        return 2
    tmp = Path(tempfile.mkdtemp(prefix="hotline-bench-speech-"))
    data = offset_config(safe_yaml.load_file(REPO / "hotline.yaml"), args.offset, tmp)
    data.setdefault("speech", {}).update(mode="after_choice", engine="whisper")
    path = tmp / "bench-speech.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False))
    config = load_config(path)
    stack = Stack(path, instance="bench-speech", run_dir=tmp / "run")
    phones = None
    try:
        stack.up(require_fastagi=True, speech=False)
        stack.start_speech(required=True)
        phones = start_phones(config, tmp / "phones")
        args.config = str(path)
        return asyncio.run(run(args))
    finally:
        if phones is not None:
            phones.stop()
        stack.down()


if __name__ == "__main__":
    sys.exit(main())
