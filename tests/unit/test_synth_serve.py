"""``synth_prompts.py --serve``: one loaded model, one request per line, every request answered
(bad ones with a non-zero code, without stopping the server)."""

from __future__ import annotations

import io
import json
from pathlib import Path

from speech import synth_prompts


def test_serve_answers_each_request_and_survives_bad_ones(tmp_path: Path, monkeypatch, capsys):
    tsv = tmp_path / "spoken.tsv"
    tsv.write_text("name\ttext\nkb-gjj-rent\t示例：可以在浙里办申请。\n", encoding="utf-8")
    requests = [
        "not json",
        json.dumps(["--serve"]),
        json.dumps(["--no-such-flag"]),
        json.dumps(["--prompts", str(tmp_path / "missing.tsv"), "--out", str(tmp_path)]),
        json.dumps(["--prompts", str(tsv), "--out", str(tmp_path / "out"), "--dry-run"]),
    ]
    monkeypatch.setattr("sys.stdin", io.StringIO("\n".join(requests) + "\n"))
    assert synth_prompts.serve(tts=object()) == 0  # a dry run never touches the model
    out = [line for line in capsys.readouterr().out.splitlines() if line.startswith("SYNTH")]
    assert out == [f"{synth_prompts.SERVE_DONE} {rc}" for rc in (0, 2, 2, 2, 2, 0)]
