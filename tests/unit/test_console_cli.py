"""``python -m console serve`` refuses configs it cannot run safely, before listening."""

from __future__ import annotations

from pathlib import Path

import pytest

from console.__main__ import main

REPO = Path(__file__).resolve().parents[2]


def _config(tmp_path: Path, replace: tuple[str, str] | None = None) -> str:
    text = (REPO / "hotline.yaml").read_text(encoding="utf-8")
    text = text.replace("run/console-access.sqlite3", str(tmp_path / "access.sqlite3"))
    if replace:
        assert replace[0] in text
        text = text.replace(*replace)
    path = tmp_path / "h.yaml"
    path.write_text(text, encoding="utf-8")
    return str(path)


def test_a_config_with_the_old_shared_tokens_says_how_to_migrate(tmp_path: Path, capsys) -> None:
    path = _config(tmp_path, ("  users_db:", "  token: change-me-agent-console-12345\n  users_db:"))
    assert main(["serve", "--config", path]) == 2
    err = capsys.readouterr().err
    assert "console.token" in err and "hotline users add" in err


def test_a_public_address_needs_an_allow_list(tmp_path: Path, capsys) -> None:
    path = _config(tmp_path)
    assert main(["serve", "--config", path, "--host", "0.0.0.0"]) == 2
    assert "not loopback" in capsys.readouterr().err
    assert main(["serve", "--config", path, "--port", "70000"]) == 2


def test_the_console_port_follows_the_fastagi_port_unless_set(tmp_path: Path) -> None:
    from hotline.config import load_config

    assert load_config(_config(tmp_path)).console_port == 4575
    moved = load_config(_config(tmp_path, ("  port: 4573", "  port: 14573")))
    assert moved.console_port == 14575
    with pytest.raises(ValueError, match=r"console\.port"):
        load_config(
            _config(
                tmp_path,
                ("  host: 127.0.0.1         # port", "  port: 0\n  host: 127.0.0.1         # port"),
            )
        )


async def test_a_request_from_a_peer_outside_the_allow_list_never_reaches_the_console(
    tmp_path: Path,
) -> None:
    import httpx

    from access import AccessStore
    from console.__main__ import build_app
    from hotline.config import load_config

    config = load_config(_config(tmp_path))
    app = build_app(config, AccessStore.from_config(config), "127.0.0.1")

    def client(peer: str) -> httpx.AsyncClient:
        transport = httpx.ASGITransport(app=app, client=(peer, 40000))
        return httpx.AsyncClient(transport=transport, base_url="http://console")

    async with client("10.1.2.3") as outsider:
        refused = await outsider.get("/api/health")
    async with client("127.0.0.1") as local:
        served = await local.get("/api/health")
    assert refused.status_code == 403 and "may not use the console" in refused.text
    assert served.status_code == 200 and served.json()["ok"] is True
