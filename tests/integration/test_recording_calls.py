"""Every answered call is recorded on two channels (issue 11), in a real call: a sipp caller
presses 8 (教育), the education seat's only agent (a sipp phone that speaks a synthesised
greeting as soon as it answers) takes the call, then the caller says its matter.  Within 10 s
of the hang-up the recording is in the store outside the rootfs, encrypted (not a WAV
without the key), with the agent's voice on one channel and the caller's on the other; the
call record points at it; the background worker then transcribes both channels.

A stack of its own (slot ``qa`` in instances.py): Asterisk, FastAGI, Redis, the records and
recordings services; no speech service (``speech.mode: off``).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import time
import wave
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from instances import stack_instance

from calls.store import SqliteCallStore
from cli.commands.call import place_call
from hotline import safe_yaml
from hotline.config import HotlineConfig, load_config
from recordings.crypto import RecordingKey
from recordings.index import RecordingIndex
from speech.pcap import wav_to_pcap
from speech.stereo import rms, speech_spans, split
from testphones.sipp import (
    CallerSpec,
    Phone,
    key_steps,
    missing_dtmf_samples,
    offset_config,
    prepare_media,
    speaking_phone_scenario,
    start_phone,
    stop_phone,
)

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
SHARED = Path(os.environ.get("HOTLINE_SHARED", REPO.parent / "shared"))
CALLER_WAV = SHARED / "audio" / "hotline" / "dev04.wav"
CALLER_TEXT = "我要举报一个工地晚上十一点还在施工，噪音特别大，在拱墅区。"
AGENT_WAV = REPO / "bench" / "qa_scripts" / "audio" / "g_good.wav"
AGENT_TEXT = "您好，12345热线，很高兴为您服务。"
INSTANCE, OFFSET = stack_instance("qa")
AGENT = "1007"
KEY = "8"
KEY_AT_S = 4.0
SPEAK_AFTER_KEY_S = 10.0
"""The caller speaks this long after its key: after the agent's greeting."""
STORED_WITHIN_S = 10.0
TRANSCRIBED_WITHIN_S = 180.0


@dataclass
class RecordingHotline:
    config: HotlineConfig
    stack: object  # runtime.stack.Stack
    agent: Phone
    workdir: Path


@pytest.fixture(scope="module")
def hotline(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RecordingHotline]:
    if os.geteuid() != 0:
        pytest.skip("integration tests need root (Asterisk runs in a chroot)")
    if shutil.which("sipp") is None or missing_dtmf_samples():
        pytest.skip("sipp (sip-tester) with its RTP event samples is needed")
    for wav in (CALLER_WAV, AGENT_WAV):
        if not wav.is_file():
            pytest.skip(f"test speech {wav} is missing")
    from runtime.procs import StackError
    from runtime.stack import Stack

    tmp = tmp_path_factory.mktemp("recording-itest")
    data = offset_config(safe_yaml.load_file(REPO / "hotline.yaml"), OFFSET, tmp)
    data["speech"]["mode"] = "off"
    data["kb"]["enabled"] = False
    data["recording"]["transcribe"] = True
    path = tmp / f"{INSTANCE}.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False))
    config = load_config(path)
    agent_cfg = next(a for a in config.agents if a.id == AGENT)
    (tmp / "agent").mkdir()
    pcap = wav_to_pcap(AGENT_WAV, tmp / "agent" / "greeting.pcap").path
    scenario = speaking_phone_scenario(tmp / "agent", pcap)
    stack = Stack(path, instance=INSTANCE, run_dir=tmp / "run")
    try:
        stack.up(require_fastagi=True, speech=False)
    except StackError as exc:
        stack.down()
        pytest.fail(f"the recording test stack did not come up: {exc}", pytrace=False)
    try:
        phone = start_phone(agent_cfg.endpoint, agent_cfg.host, agent_cfg.port, tmp / "agent",
                            scenario=scenario)  # fmt: skip
    except Exception:
        stack.down()
        raise
    try:
        yield RecordingHotline(config, stack, phone, tmp)
    finally:
        stop_phone(phone)
        stack.down()


def call_record(config: HotlineConfig, call_id: str):  # type: ignore[no-untyped-def]
    async def read():  # type: ignore[no-untyped-def]
        store = SqliteCallStore(config.calls.path)
        try:
            return await store.get(call_id)
        finally:
            await store.close()

    return asyncio.run(read())


def wait_for(what, timeout_s: float, step_s: float = 0.2):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while True:
        got = what()
        if got or time.monotonic() > deadline:
            return got
        time.sleep(step_s)


def shared_chars(a: str, b: str) -> float:
    """The share of ``b``'s characters (letters and digits) that ``a`` also has."""
    want = [c for c in b if c.isalnum()]
    return sum(1 for c in want if c in a) / max(1, len(want))


def test_an_agent_call_is_stored_encrypted_on_two_channels_and_transcribed(hotline) -> None:
    h = hotline
    steps = key_steps(KEY, KEY_AT_S)
    plan, media, media_s = prepare_media(steps, h.workdir / "caller", CALLER_WAV,
                                         SPEAK_AFTER_KEY_S)  # fmt: skip
    spec = CallerSpec.into(h.config, caller="13800072001", digits=plan, hold_s=2.0,
                           media_pcap=media, media_s=media_s)  # fmt: skip
    call = asyncio.run(place_call(h.config, spec, h.workdir / "call", timeout_s=120))
    hung_up = time.monotonic()
    assert call["sipp"]["ok"], call["sipp"]
    assert call["agent"] is not None and call["agent"]["endpoint"] == f"agent{AGENT}", call
    call_id = call["linkedid"]

    index = RecordingIndex(h.config.recording.index)
    try:
        recs = wait_for(lambda: index.of_call(call_id), STORED_WITHIN_S + 5)
        stored_after = time.monotonic() - hung_up
        print(f"recording stored {stored_after:.1f} s after the caller's hang-up")
        assert recs, f"no recording of {call_id} in the store"
        assert stored_after <= STORED_WITHIN_S
        (rec,) = recs
        path = Path(rec.path)
        assert path.parent == Path(h.config.recording.store_dir)
        assert not str(path).startswith(str(h.stack.rootfs))  # type: ignore[attr-defined]
        assert oct(path.stat().st_mode & 0o777) == "0o600"
        spool = h.stack.recording_spool  # type: ignore[attr-defined]
        assert not [n for n in os.listdir(spool) if n.startswith(call_id)]  # plaintext gone

        blob = path.read_bytes()
        assert b"RIFF" not in blob[:64]
        with pytest.raises((wave.Error, EOFError)):
            wave.open(str(path)).close()
        key = RecordingKey.from_file(h.config.recording.key_file)
        caller, agent, rate = split(key.decrypt(blob, rec.id))
        agent_spans, caller_spans = speech_spans(agent, rate), speech_spans(caller, rate)
        print(
            f"agent speaks {agent_spans}, caller speaks {caller_spans}, {caller.size / rate:.1f} s"
        )
        assert agent_spans and caller_spans
        assert agent_spans[0][0] < caller_spans[0][0]  # the greeting comes first
        a0, a1 = (int(t * rate) for t in (agent_spans[0][0], agent_spans[-1][1]))
        c0, c1 = (int(t * rate) for t in (caller_spans[0][0], caller_spans[-1][1]))
        assert rms(agent[a0:a1]) > 10 * max(rms(caller[a0:a1]), 1.0)
        assert rms(caller[c0:c1]) > 10 * max(rms(agent[c0:c1]), 1.0)

        record = wait_for(lambda: (r := call_record(h.config, call_id)) and r.recordings and r, 10)
        assert record and record.recordings == [rec.id]

        done = wait_for(
            lambda: (r := index.get(rec.id)) is not None and r.state != "stored",
            TRANSCRIBED_WITHIN_S,
            1.0,
        )
        assert done and index.get(rec.id).state == "transcribed"  # type: ignore[union-attr]
        lines = index.transcript(call_id)
        for x in lines:
            print(f"  {x['start']:6.2f}-{x['end']:6.2f} {x['speaker']}: {x['text']}")
        said = {
            s: "".join(x["text"] for x in lines if x["speaker"] == s) for s in ("caller", "agent")
        }
        assert shared_chars(said["agent"], AGENT_TEXT) >= 0.5, said
        assert shared_chars(said["caller"], CALLER_TEXT) >= 0.5, said
        import rjieba

        word = max(rjieba.cut(said["caller"]), key=len)
        assert call_id in index.search_words(word), word
    finally:
        index.close()
