"""Callers say their matter in Mandarin in real calls (issue 3).

A test instance of its own (``speech.mode: after_choice``; ports moved by the base offset +
1000, ``instances.py``): Asterisk,
the FastAGI IVR, Redis, the speech service with the Whisper engine, the agent console, and sipp
phones.  Each caller is a sipp caller that presses a key during the greeting, then speaks one of
the hotline utterances (../shared/audio/hotline, sent as G.711 RTP made from the wav) after
"请简要说出您要反映的事项".  The draft the IVR kept in the ticket store is compared with
expected.tsv; the call itself must go where the draft says (a confident spoken seat, a confirmed
emergency line, an out-of-scope notice) or to the key's seat.

Per-field accuracy and the time from end of speech to draft are printed (``pytest -s``).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import statistics
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from instances import stack_instance

from cli.commands.call import place_call, prompt_seconds
from hotline import safe_yaml
from hotline.config import HotlineConfig, load_config
from speech.pcap import with_trailing_silence
from testphones.sipp import (
    CallerSpec,
    PhoneSet,
    key_steps,
    missing_dtmf_samples,
    offset_config,
    prepare_media,
    start_phones,
)

pytestmark = [pytest.mark.integration, pytest.mark.speech]

REPO = Path(__file__).resolve().parents[2]
SHARED = Path(os.environ.get("HOTLINE_SHARED", REPO.parent / "shared"))
AUDIO = SHARED / "audio" / "hotline"
INSTANCE, OFFSET = stack_instance("speech")
KEY_AT_S = 4.0
"""The key is pressed during the greeting (it counts, and saves the caller 15 s)."""
HOLD_S = 36.0
"""After the speech: end-pointing, the draft, then a seat, or two emergency confirmations."""
STAGGER_S = 4.0
FIELDS = ("type", "seat", "district", "emergency", "scope", "callback")


# ---- the instance ---------------------------------------------------------------------------
@dataclass
class SpeechHotline:
    config: HotlineConfig
    stack: object  # runtime.stack.Stack
    phones: PhoneSet
    workdir: Path
    calls: int = 0

    def spec(self, wav: Path | None, digit: str, caller: str, hold_s: float = HOLD_S) -> CallerSpec:
        """A caller pressing ``digit`` during the greeting, then speaking ``wav`` once the
        speak-demand prompt has played."""
        self.calls += 1
        speak_after = (prompt_seconds("speak-demand") or 6.0) + 1.0
        steps = key_steps(digit, KEY_AT_S)
        folder = self.workdir / "media" / f"{caller}-{self.calls}"
        if wav is not None:  # the phone goes on sending silence after the words
            wav = with_trailing_silence(wav, folder / "speech.wav")
        plan, media, media_s = prepare_media(steps, folder, wav, speak_after)
        return CallerSpec.into(
            self.config,
            caller=caller,
            digits=plan,
            hold_s=hold_s,
            media_pcap=media,
            media_s=media_s,
        )

    async def place(self, spec: CallerSpec, delay_s: float = 0.0) -> dict:
        await asyncio.sleep(delay_s)
        workdir = self.workdir / "calls" / f"{int(time.time() * 1000)}-{spec.caller}"
        return await place_call(self.config, spec, workdir, timeout_s=240)

    async def stored_draft(self, call_id: str, wait_s: float = 30.0) -> dict | None:
        """The draft the IVR kept in the ticket store for ``call_id`` (waits for it)."""
        from tickets.sqlite import SqliteTicketStore

        store = SqliteTicketStore.from_config(self.config)
        try:
            deadline = time.monotonic() + wait_s
            while time.monotonic() < deadline:
                draft = await store.get_draft(call_id)
                if draft is not None:
                    return draft
                await asyncio.sleep(0.5)
            return None
        finally:
            await store.close()

    def agents_for(self, seat: str) -> set[str]:
        return {a.endpoint for a in self.config.agents if seat in a.seats}

    @property
    def console_url(self) -> str:
        return f"http://{self.config.console.host}:{self.config.console_port}"


def start_speech_hotline(
    tmp: Path,
    mode: str = "after_choice",
    instance: str = INSTANCE,
    offset: int = OFFSET,
    tweak: Callable[[dict], None] | None = None,
) -> tuple[SpeechHotline, object]:
    """Bring the speech test instance up (``tweak`` edits its config data first); returns it
    and the Stack (to stop it)."""
    if os.geteuid() != 0:
        pytest.skip("integration tests need root (Asterisk runs in a chroot)")
    if shutil.which("sipp") is None or missing_dtmf_samples():
        pytest.skip("sipp (sip-tester) with its RTP event samples is needed")
    from speech.models import ModelError, whisper_model_dir

    try:
        whisper_model_dir()
    except ModelError as exc:
        pytest.skip(f"the Whisper model is not installed: {exc}")
    from runtime.procs import StackError
    from runtime.stack import Stack

    base = safe_yaml.load_file(REPO / "hotline.yaml")
    data = offset_config(base, offset, tmp)
    data.setdefault("speech", {}).update(mode=mode, engine="whisper")
    # 16 callers 4 s apart to a few agents: an agent takes the next caller at once (no
    # wrap-up), so every caller whose draft routes him reaches a person within his hold
    data["acd"] = {**data["acd"], "wrapup_s": 0}
    if tweak is not None:
        tweak(data)
    path = tmp / f"{instance}.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False))
    config = load_config(path)
    stack = Stack(path, instance=instance, run_dir=tmp / "run")
    try:
        stack.up(require_fastagi=True)
        if not stack.start_speech(required=True):
            raise StackError("the speech service did not start")
        stack.start_console(required=True)
    except StackError as exc:
        stack.down()
        pytest.fail(f"the speech test stack did not come up: {exc}", pytrace=False)
    try:
        phones = start_phones(config, tmp / "phones")
    except Exception:
        stack.down()
        raise
    return SpeechHotline(config, stack, phones, tmp), stack


@pytest.fixture(scope="module")
def speech_hotline(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SpeechHotline]:
    h, stack = start_speech_hotline(tmp_path_factory.mktemp("speech-itest"))
    try:
        yield h
    finally:
        h.phones.stop()
        stack.down()  # type: ignore[attr-defined]


# ---- expected.tsv ---------------------------------------------------------------------------
def expected_rows(config: HotlineConfig) -> list[dict[str, str]]:
    """expected.tsv rows; a stray tab (dev11, dev12) moves a value one cell right of its
    header: an out-of-scope name in ``callback`` and a number in ``notes`` are moved back."""
    lines = (AUDIO / "expected.tsv").read_text(encoding="utf-8").splitlines()
    head = lines[0].split("\t")
    scopes = {r.name for r in config.caller_rules.out_of_scope.values()}
    rows = []
    for line in lines[1:]:
        if not line.strip():
            continue
        cells = line.split("\t")
        row = dict(zip(head, cells + [""] * (len(head) - len(cells)), strict=False))
        if row["callback"] in scopes and not row["scope"]:
            row["scope"], row["callback"] = row["callback"], ""
        if row["notes"].isdigit() and not row["callback"]:
            row["callback"], row["notes"] = row["notes"], ""
        rows.append(row)
    return rows


def field_results(draft: dict, row: dict[str, str], config: HotlineConfig) -> dict[str, bool]:
    """Which expected fields the stored draft got right (an empty cell: nothing extracted)."""
    seat_ids = {s.name.removesuffix("专席").removesuffix("席"): s.id for s in config.seats}
    want_seats = [seat_ids[s] for s in row["seat"].split(";") if s]
    got_seats = [d.get("seat") for d in draft.get("demands") or []]
    also = {n.split()[-1] for n in [row["notes"]] if n.startswith("also ")}
    scope = draft.get("out_of_scope")
    scope_name = config.caller_rules.out_of_scope[scope].name if scope else ""
    return {
        "type": (draft.get("type") or "") == row["type"],
        "seat": got_seats == want_seats if want_seats else not draft.get("seat"),
        "district": (draft.get("district") or "") == row["district"],
        "emergency": (draft.get("emergency") or "") in {row["emergency"], *also},
        "scope": scope_name == row["scope"],
        "callback": (draft.get("callback") or "") == row["callback"],
    }


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


# ---- the scenarios --------------------------------------------------------------------------
def test_sixteen_callers_say_their_matter_and_the_drafts_match_expected(speech_hotline) -> None:
    h = speech_hotline
    config = h.config
    rows = expected_rows(config)
    assert len(rows) == 16
    general = config.general_seat.id
    wait_s = 8.0  # agi_scripts.speech_listen.DRAFT_WAIT_S: how long the IVR waits for a draft

    async def all_calls() -> list[dict]:
        specs = [
            h.spec(AUDIO / f"{row['id']}.wav", "0", f"1390000{i:04d}") for i, row in enumerate(rows)
        ]
        return list(await asyncio.gather(*(h.place(s, i * STAGGER_S) for i, s in enumerate(specs))))

    started = time.monotonic()
    calls = asyncio.run(all_calls())
    wall = time.monotonic() - started

    right: Counter[str] = Counter()
    latencies, misses = [], []
    routed_by_speech = 0
    for row, call in zip(rows, calls, strict=True):
        assert call["sipp"]["ok"], (row["id"], call["sipp"])
        # whoever hung up first (the IVR after a notice, or the caller): one ending, and the
        # assertions below are on where the call went
        assert len(call["sipp"]["ended_by"]) == 1, (row["id"], call["sipp"])
        assert call["linkedid"], row["id"]
        draft = asyncio.run(h.stored_draft(call["linkedid"]))
        assert draft is not None, f"{row['id']}: no draft stored for {call['linkedid']}"
        assert draft["audio"] and Path(draft["audio"]).is_file(), draft.get("audio")
        assert draft["caller"] == call["caller"]  # kept (encrypted) for the callback
        ok = field_results(draft, row, config)
        right.update(f for f, v in ok.items() if v)
        if not all(ok.values()):
            misses.append((row["id"], draft["transcript"], [f for f, v in ok.items() if not v]))
        latency = float(draft["latency_s"])
        latencies.append(latency)

        # the call went where the draft (when it came in time) and the key say
        in_time = latency < wait_s - 0.5
        line = draft.get("emergency") if in_time else None
        scope = draft.get("out_of_scope") if in_time else None
        seat_conf = (draft.get("confidence") or {}).get("seat") or 0.0
        if line:
            assert call["emergency"] is not None, (row["id"], call)
            assert call["emergency"]["line"] == line
            assert call["emergency"]["dial_status"] == "ANSWER"
        elif scope:
            assert call["agent"] is None and call["seat"] is None, (row["id"], call)
        elif latency > wait_s + 0.5:
            assert call["seat"] == general, (row["id"], call)
        elif in_time:
            want = draft["seat"] if draft.get("seat") and seat_conf >= 0.8 else general
            routed_by_speech += want != general
            assert call["seat"] == want, (row["id"], seat_conf, call)
            assert not call["fallback"]
            assert call["agent"] is not None and call["agent"]["endpoint"] in h.agents_for(want)

    n = len(rows)
    silence_s = config.speech.silence_ms / 1000
    print(f"\n16 spoken calls in {wall:.0f} s wall ({STAGGER_S:.0f} s apart)")
    print("per-field accuracy in calls: " + "  ".join(f"{f} {right[f]}/{n}" for f in FIELDS))
    p50, p95 = statistics.median(latencies), _pct(latencies, 0.95)
    print(
        f"socket release → draft: p50 {p50:.2f} s, p95 {p95:.2f} s, max {max(latencies):.2f} s;"
        f" end of speech → draft (+{silence_s:.1f} s end-pointing): p50 {p50 + silence_s:.2f} s,"
        f" p95 {p95 + silence_s:.2f} s"
    )
    print(f"routed to a spoken seat over key 0: {routed_by_speech}")
    for miss in misses:
        print("  miss", *miss)
    # The audio Asterisk receives from sipp varies with the machine's load (RTP timing), and
    # so does what Whisper hears: under CI load two district names were misheard in one run
    # (拱墅 → "狗受劲", 滨江 → "并将"; 16/16 on a quieter machine), so district allows two
    # misses, as type does.
    floors = {"type": 14, "seat": 12, "district": 14, "emergency": 15, "scope": 15, "callback": 15}
    low = {f: right[f] for f, floor in floors.items() if right[f] < floor}
    assert not low, f"below the floor: {low} (floors {floors}); misses {misses}"


def test_speech_service_killed_mid_utterance_the_caller_still_reaches_the_chosen_seat(
    speech_hotline,
) -> None:
    h = speech_hotline
    stack = h.stack
    spec = h.spec(AUDIO / "dev01.wav", "2", "13900009901", hold_s=25)
    speak_at = KEY_AT_S + (prompt_seconds("speak-demand") or 6.0) + 1.0
    pid = stack.status()["speech"]["pid"]  # type: ignore[attr-defined,index]
    assert pid, "the speech service is not running"

    async def call_and_kill() -> dict:
        task = asyncio.create_task(h.place(spec))
        await asyncio.sleep(speak_at + 3.0)  # about 2 s into the sentence
        os.kill(pid, signal.SIGKILL)
        return await task

    try:
        call = asyncio.run(call_and_kill())
    finally:
        stack.stop_speech()  # type: ignore[attr-defined]
        stack.start_speech(required=True)  # type: ignore[attr-defined]

    assert call["sipp"]["ok"], call["sipp"]
    assert call["dtmf"] == ["2"]
    assert call["seat"] == "gjj" and call["queue"] == "seat_gjj", call
    assert not call["fallback"], call  # the IVR itself went on, not the dialplan's safety net
    assert call["agent"] is not None and call["agent"]["endpoint"] in h.agents_for("gjj")


def test_a_caller_who_hangs_up_mid_sentence_still_leaves_a_draft(speech_hotline, tmp_path) -> None:
    import numpy as np

    from speech.audio import write_wav
    from speech.pcap import RATE, read_pcm8k

    h = speech_hotline
    cut = tmp_path / "dev01-cut.wav"  # 3.5 s of "我要投诉我们小区楼下的饭店油烟太大…"
    write_wav(cut, read_pcm8k(AUDIO / "dev01.wav")[: int(3.5 * RATE)].astype(np.int16), RATE)
    speak_after = (prompt_seconds("speak-demand") or 6.0) + 1.0
    plan, media, media_s = prepare_media(key_steps("0", KEY_AT_S), tmp_path / "m", cut, speak_after)
    spec = CallerSpec(
        h.config.sip.host, h.config.sip.port, h.config.hotline.number, "13900009902",
        digits=plan, hold_s=0.2, media_pcap=media, media_s=media_s,
    )  # fmt: skip

    call = asyncio.run(h.place(spec))

    assert call["sipp"]["ok"] and call["agent"] is None, call
    draft = asyncio.run(h.stored_draft(call["linkedid"]))
    assert draft is not None, "the half-said matter was lost"
    assert draft["ended_by"] == "hangup" and draft["transcript"], draft
    assert draft["caller"] == "13900009902" and Path(draft["audio"]).is_file()
