"""``hangtar delivery`` against a real catalogue and a real sshd: output, exit codes and effects."""

from __future__ import annotations

import argparse
import io
import json
from pathlib import Path
from typing import Any

import pytest

from siprec_server.cli_delivery import add_commands, run
from storage.delivery_items import DeliveryStatus
from tests.unit.storage.retention_samples import T0

from .certs import Authority
from .conftest import Env
from .sshd import USER, USER_PASSWORD, Sshd, keygen
from .vsftpd import USER as FTP_USER
from .vsftpd import USER_PASSWORD as FTP_PASSWORD
from .vsftpd import running_vsftpd


def storage_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path)
    parser.add_argument("--data-dir", type=Path)
    parser.add_argument("--database-dsn")
    parser.add_argument("--log-level")


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="hangtar")
    add_commands(root.add_subparsers(dest="command", required=True), storage_options)
    return root


class Hangtar:
    def __init__(self, env: Env, capsys: pytest.CaptureFixture[str]) -> None:
        self.env, self.capsys = env, capsys

    async def __call__(self, *argv: str) -> tuple[int, str, str]:
        self.capsys.readouterr()
        code = await run(parser().parse_args(["delivery", *argv]), self.env.config)
        assert code is not None
        out, err = self.capsys.readouterr()
        return code, out, err

    async def json(self, *argv: str) -> Any:
        code, out, err = await self(*argv, "--json")
        assert code == 0, err
        return json.loads(out)


@pytest.fixture
def hangtar(env: Env, capsys: pytest.CaptureFixture[str]) -> Hangtar:
    return Hangtar(env, capsys)


async def test_plain_ftp_and_an_unpinned_server_are_refused(env: Env, hangtar: Hangtar) -> None:
    code, _, err = await hangtar(
        "targets", "add", "--tenant", "acme", "--name", "legacy", "--url", "ftp://rec@ftp.example.hu/in"
    )
    assert code == 4
    assert "refused: plain FTP sends the password and the recordings in clear text" in err
    assert "GDPR Art. 32" in err and "sftp" in err
    code, _, err = await hangtar(
        "targets", "add", "--tenant", "acme", "--name", "unpinned", "--url", "sftp://rec@files.example.hu/in"
    )
    assert code == 4 and "host key pinned" in err
    assert await hangtar.json("targets", "list") == []


async def test_a_target_from_add_to_delivered_copies_and_its_log(
    env: Env, sshd: Sshd, hangtar: Hangtar, monkeypatch: pytest.MonkeyPatch
) -> None:
    env.clock.now = T0
    call = await env.add_recording()
    monkeypatch.setattr("sys.stdin", io.StringIO(USER_PASSWORD + "\n"))
    added = await hangtar.json(
        "targets",
        "add",
        "--tenant",
        "acme",
        "--name",
        "archive",
        "--url",
        f"sftp://{USER}@127.0.0.1:{sshd.port}/~/incoming",
        "--host-key",
        f"[127.0.0.1]:{sshd.port} {sshd.host_key}",
        "--password-file",
        "-",
        "--schedule",
        "daily 01:00-05:00",
        "--since",
        "2026-11-01",
        "--as",
        "anna@example.hu",
    )
    assert added["endpoint"] == f"sftp://{USER}@127.0.0.1:{sshd.port}/~/incoming"
    assert added["backfill"] == 1 and added["has_secret"] is True
    code, shown, _ = await hangtar("targets", "show", "--tenant", "acme", "archive")
    assert code == 0 and "password (stored encrypted)" in shown and USER_PASSWORD not in shown
    assert "daily 01:00-05:00 Europe/Budapest" in shown

    # A pass now for this target, whatever its window.
    report = await hangtar.json("run", "--tenant", "acme", "--target", "archive")
    assert (report["enqueued"], report["delivered"], report["dead"]) == (1, 1, 0)
    assert [name for name in sshd.files() if name.endswith(".flac")] == [
        f"{call.started_at:%Y-%m-%d_%H%M%S}_{call.reference}.flac"
    ]
    code, out, _ = await hangtar("log", "--recording", call.reference.lower())
    assert code == 0 and call.reference in out and "delivered" in out and "incoming/" in out
    [entry] = await hangtar.json("log", "--target", added["id"])
    assert entry["result"] == "delivered" and entry["reference"] == call.reference

    code, _, err = await hangtar("targets", "remove", "--tenant", "acme", "archive")
    assert code == 4 and "disable it instead" in err
    code, out, _ = await hangtar("targets", "disable", "--tenant", "acme", "archive")
    assert (code, out.strip()) == (0, "archive: disabled")
    [listed] = await hangtar.json("targets", "list", "--tenant", "acme")
    assert listed["enabled"] is False


async def test_dead_letters_and_their_replay(env: Env, sshd: Sshd, hangtar: Hangtar) -> None:
    env.clock.now = T0
    call = await env.add_recording()
    impostor = keygen(env.config.data_dir / "impostor", "files.example.hu")
    key_file = env.config.data_dir / "client_key"
    key_file.write_text(sshd.client_key)
    await hangtar.json(
        "targets",
        "add",
        "--tenant",
        "acme",
        "--name",
        "archive",
        "--url",
        f"sftp://{USER}@127.0.0.1:{sshd.port}/~/incoming",
        "--host-key",
        impostor,
        "--key-file",
        str(key_file),
        "--since",
        "2026-11-01",
    )
    code, out, _ = await hangtar("run")
    assert code == 1 and "dead 1" in out
    [dead] = await hangtar.json("dead")
    assert dead["reference"] == call.reference and "pinned host key" in dead["last_error"]
    code, _, err = await hangtar("targets", "show", "archive")
    assert code == 2 and "--tenant" in err

    replayed = await hangtar.json("replay", str(dead["id"]))
    assert replayed["status"] == DeliveryStatus.PENDING.value
    code, _, err = await hangtar("replay", str(dead["id"]))
    assert code == 4 and "is pending, not dead" in err
    code, _, err = await hangtar("replay", "999999")
    assert code == 3


async def test_an_ftps_target_from_the_command_line_trusts_the_given_ca(
    env: Env, hangtar: Hangtar, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    authority = Authority()
    with running_vsftpd(authority.issue("127.0.0.1")) as ftpd:
        env.clock.now = T0
        call = await env.add_recording()
        ca_file = tmp_path / "acme-ca.pem"
        ca_file.write_text(authority.pem)
        url = f"ftps://{FTP_USER}@127.0.0.1:{ftpd.port}/~/incoming"
        code, _, err = await hangtar(
            "targets", "add", "--tenant", "acme", "--name", "ftp", "--url", url, "--host-key", "x"
        )
        assert code == 2 and "no host key" in err
        monkeypatch.setattr("sys.stdin", io.StringIO(FTP_PASSWORD + "\n"))
        added = await hangtar.json(
            "targets",
            "add",
            "--tenant",
            "acme",
            "--name",
            "ftp",
            "--url",
            url,
            "--ca-file",
            str(ca_file),
            "--password-file",
            "-",
            "--since",
            "2026-11-01",
        )
        assert added["endpoint"] == url and added["has_secret"] is True
        report = await hangtar.json("run", "--tenant", "acme", "--target", "ftp")
        assert (report["enqueued"], report["delivered"], report["dead"]) == (1, 1, 0)
        assert [name for name in ftpd.files() if name.endswith(".flac")] == [
            f"{call.started_at:%Y-%m-%d_%H%M%S}_{call.reference}.flac"
        ]
    code, _, err = await hangtar(
        "targets",
        "add",
        "--tenant",
        "acme",
        "--name",
        "s",
        "--url",
        "sftp://rec@h/in",
        "--ca-file",
        str(ca_file),
    )
    assert code == 2 and "--ca-file is for ftps targets" in err
