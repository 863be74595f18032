"""A throwaway PostgreSQL cluster for the tests: initdb in a temp directory, pg_ctl start on
127.0.0.1 (a free port) and a unix socket in that directory only, stopped and removed at the
end. Durability is off (fsync, full-page writes, synchronous commit): the data lives for one
test session. PostgreSQL refuses to run as root, so as root the cluster belongs to the
`postgres` user the Debian package creates."""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

SUPERUSER = "featurekit"
PASSWORD_USER = "featurekit_password"


class PostgresMissing(Exception):
    """No PostgreSQL server binaries on this machine."""


@dataclass
class Server:
    host: str
    port: int
    user: str
    directory: Path

    def dsn(self, database: str = "postgres") -> str:
        return f"host={self.host} port={self.port} user={self.user} dbname={database}"


def binaries() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), key=lambda p: int(p.split("/")[4]))
    if found:
        return Path(found[-1]).parent
    on_path = shutil.which("pg_ctl")
    if on_path:
        return Path(on_path).parent
    raise PostgresMissing("no PostgreSQL server found (pg_ctl): install it, e.g. `apt-get install -y postgresql`")


def _as_owner(command: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *command] if os.geteuid() == 0 else command


def _read(path: Path) -> str:
    return subprocess.run(_as_owner(["cat", str(path)]), check=True, capture_output=True, text=True).stdout


def _write_as_owner(path: Path, text: str) -> None:
    subprocess.run(_as_owner(["tee", str(path)]), input=text, check=True, capture_output=True, text=True)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start() -> Server:
    bin_dir = binaries()
    directory = Path(tempfile.mkdtemp(prefix="featurekit-pg-"))
    if os.geteuid() == 0:
        shutil.chown(directory, "postgres", "postgres")
    data = directory / "data"
    subprocess.run(
        _as_owner([str(bin_dir / "initdb"), "-D", str(data), "-U", SUPERUSER, "--auth=trust", "--encoding=UTF8", "--no-locale"]),
        check=True, capture_output=True, text=True,
    )
    # One role must give its password (the tests of a wrong one); everyone else is trusted.
    hba = data / "pg_hba.conf"
    _write_as_owner(hba, f"host all {PASSWORD_USER} 127.0.0.1/32 scram-sha-256\n" + _read(hba))
    port = _free_port()
    options = (
        f"-c listen_addresses=127.0.0.1 -c port={port} -c unix_socket_directories={directory} "
        "-c fsync=off -c full_page_writes=off -c synchronous_commit=off -c max_connections=50"
    )
    subprocess.run(
        _as_owner([str(bin_dir / "pg_ctl"), "-D", str(data), "-l", str(directory / "log"), "-o", options, "-w", "start"]),
        check=True, capture_output=True, text=True,
    )
    return Server(host="127.0.0.1", port=port, user=SUPERUSER, directory=directory)


def stop(server: Server) -> None:
    subprocess.run(
        _as_owner([str(binaries() / "pg_ctl"), "-D", str(server.directory / "data"), "-m", "immediate", "stop"]),
        capture_output=True,
    )
    shutil.rmtree(server.directory, ignore_errors=True)
