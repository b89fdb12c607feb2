"""Parallel real-call tests: every xdist worker's stacks get names and ports of their own."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from hotline import safe_yaml
from testphones.sipp import offset_config

REPO = Path(__file__).resolve().parents[2]


def instances(monkeypatch: pytest.MonkeyPatch, worker: str | None, base: str = "30000"):  # type: ignore[no-untyped-def]
    monkeypatch.setenv("HOTLINE_ITEST_PORT_OFFSET", base)
    monkeypatch.setenv("HOTLINE_ITEST_INSTANCE", "itcfg")
    if worker is None:
        monkeypatch.delenv("PYTEST_XDIST_WORKER", raising=False)
    else:
        monkeypatch.setenv("PYTEST_XDIST_WORKER", worker)
    spec = importlib.util.spec_from_file_location(
        "instances", REPO / "tests/integration/instances.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def stack_ports(offset: int) -> set[tuple[str, int]]:
    """Every (address, port) a test stack of hotline.yaml at ``offset`` listens on, with the
    agents' media ports test_stack_up uses, the rules stack's key-pressing phone and the
    supervisors' phones."""
    data = offset_config(safe_yaml.load_file(REPO / "hotline.yaml"), offset)
    out = {(data[k].get("host", "127.0.0.1"), data[k]["port"]) for k in ("sip", "ami", "redis")}
    agi = data["agi"]["port"]
    out |= {("127.0.0.1", agi + i) for i in range(4)}  # FastAGI, speech, console, metrics
    out |= {(t["host"], t["port"]) for t in data["trunks"].values()}
    out |= {("127.0.0.1", a["port"]) for a in data["agents"]}
    out |= {(s["host"], s["port"]) for s in data.get("supervisors", [])}
    out |= {("127.0.0.1", 5150 + offset + i) for i in range(22)} | {("127.0.0.1", 5807 + offset)}
    out |= {("127.0.0.2", 5061 + offset), ("127.0.0.3", 5062 + offset)}
    return out


def test_without_xdist_the_base_instance_and_offset_are_used(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    m = instances(monkeypatch, None)
    assert m.stack_instance("calls") == ("itcfg", 30000)
    assert m.stack_instance("rules") == ("itcfg-rules", 30500)


def test_each_worker_gets_its_own_names_and_ports(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    seen: dict[tuple[str, int], str] = {}
    names = set()
    for w in range(4):
        m = instances(monkeypatch, f"gw{w}")
        for kind in m.SLOTS:
            name, offset = m.stack_instance(kind)
            assert name.endswith(f"-gw{w}") and name not in names
            names.add(name)
            for port in stack_ports(offset):
                # 127.0.0.1 ports clash with each other; 127.0.0.2/.3 only among themselves
                assert port not in seen, f"{name} and {seen[port]} both use {port}"
                seen[port] = name
    assert max(p for _, p in seen) <= 65535
