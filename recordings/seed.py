"""A recorded call made from two WAV files, through the real mover, encryption, index and
call record store (for demos and for the console's tests, which run without Asterisk)."""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from calls.store import SqliteCallStore
from hotline.call import CallEvent
from hotline.config import HotlineConfig
from recordings.crypto import RecordingKey
from recordings.index import Recording, RecordingIndex, TLine
from recordings.mover import Mover


async def _record(config: HotlineConfig, call_id: str, at: float, agent: str, seat: str,
                  rec: Recording, caller_masked: str, caller_hash: str) -> None:  # fmt: skip
    store = SqliteCallStore(config.calls.path)
    try:
        for event in (
            CallEvent("started", call_id, at, "seed", call_id,
                      {"caller_masked": caller_masked, "caller_hash": caller_hash,
                       "withheld": False}),
            CallEvent("route", call_id, at + 8, "seed", call_id, {"seat": seat}),
            CallEvent("agent", call_id, at + 12, "seed", call_id, {"agent": agent}),
            CallEvent("recording", call_id, at + 13 + rec.duration_s, "seed", call_id,
                      {"recording": rec.id}),
            CallEvent("ended", call_id, at + 12 + rec.duration_s, "seed", call_id, {}),
        ):  # fmt: skip
            await store.apply(event)
    finally:
        await store.close()


def local_config(base: Path, folder: Path) -> HotlineConfig:
    """``base`` (a hotline YAML) with every store, key and index moved into ``folder`` and the
    knowledge base off: a console of its own for a demo or a test."""
    import yaml

    from hotline import safe_yaml
    from hotline.config import load_config

    data = safe_yaml.load_file(base)
    data["kb"]["enabled"] = False
    data["tickets"].update(path=str(folder / "t.sqlite3"), key_file=str(folder / "pii.key"))
    data["calls"]["path"] = str(folder / "calls.sqlite3")
    data["recording"].update(store_dir=str(folder / "store"), index=str(folder / "rec.db"),
                             key_file=str(folder / "rec.key"))  # fmt: skip
    path = folder / "hotline.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return load_config(path)


def seed_call(
    config: HotlineConfig,
    call_id: str,
    caller_wav: Path,
    agent_wav: Path,
    lines: Sequence[TLine] = (),
    *,
    at: float,
    agent: str = "1002",
    seat: str = "zonghe",
    caller_masked: str = "138****2345",
    caller_hash: str = "",
) -> Recording:
    """Store ``caller_wav``/``agent_wav`` as the recording of ``call_id`` (leg ``call_id``),
    with its call record and, when given, its transcript ``lines``."""
    r = config.recording
    index = RecordingIndex(r.index)
    try:
        with tempfile.TemporaryDirectory() as spool:
            for side, wav in (("caller", caller_wav), ("agent", agent_wav)):
                shutil.copyfile(wav, Path(spool) / f"{call_id}_{call_id}_{side}.wav")
            mover = Mover(spool, r.store_dir, index, RecordingKey.from_file(r.key_file),
                          ended=lambda _call: True, settle_s=0.0)  # fmt: skip
            mover.settle_s = -1.0  # just written: no need to wait
            (rec,) = mover.move_ready()
        if lines:
            index.set_transcript(rec, lines)
    finally:
        index.close()
    facts = _record(config, call_id, at, agent, seat, rec, caller_masked, caller_hash)
    with ThreadPoolExecutor(1) as pool:  # its own loop: callers may be inside one already
        pool.submit(asyncio.run, facts).result()
    return rec
