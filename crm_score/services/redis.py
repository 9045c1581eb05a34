"""Redis from Debian's ``redis-server`` on 127.0.0.1, AOF on (``appendfsync everysec``)."""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

from crm_core.errors import ServiceError
from crm_core.settings import Settings
from crm_score.services._process import ManagedProcess, ensure_port_free, wait_until

__all__ = ["LocalRedis"]


@dataclass(frozen=True)
class LocalRedis:
    """The project's own Redis server: install if missing, configure, start, wait, stop."""

    settings: Settings

    @property
    def home(self) -> Path:
        return self.settings.services_dir / "redis"

    @property
    def port(self) -> int:
        url = urlparse(self.settings.redis_url)
        if url.hostname not in ("127.0.0.1", "localhost"):
            raise ServiceError(
                f"CRM_REDIS_URL points at {url.hostname}, not this machine; "
                "`crm-score services` only runs Redis on 127.0.0.1."
            )
        return url.port or 6379

    @property
    def process(self) -> ManagedProcess:
        return ManagedProcess(
            "redis", self.home / "redis.pid", self.home / "redis.out", "redis-server"
        )

    def _binary(self) -> str:
        found = shutil.which("redis-server")
        if found:
            return found
        if os.geteuid() != 0 or shutil.which("apt-get") is None:
            raise ServiceError(
                "redis-server was not found. Install it (Debian/Ubuntu: "
                "sudo apt-get install redis-server) or use docker-compose instead."
            )
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        for argv in (
            ["apt-get", "update", "-qq"],
            ["apt-get", "install", "-y", "-qq", "redis-server"],
        ):
            done = subprocess.run(argv, capture_output=True, text=True, env=env, check=False)
            if done.returncode != 0:
                raise ServiceError(f"`{' '.join(argv)}` failed:\n{done.stderr[-2000:]}")
        found = shutil.which("redis-server")
        if not found:
            raise ServiceError("apt-get installed redis-server but it is not on PATH")
        # Debian's package starts its own system instance on 6379: stop it, we run our own.
        if shutil.which("service"):
            subprocess.run(["service", "redis-server", "stop"], capture_output=True, check=False)
        return found

    def _write_config(self) -> Path:
        data = self.home / "data"
        data.mkdir(parents=True, exist_ok=True)
        lines = [
            "bind 127.0.0.1",
            f"port {self.port}",
            f"dir {data}",
            "daemonize no",
            "appendonly yes",
            "appendfsync everysec",
            'save ""',
            f"logfile {self.home / 'redis.log'}",
            "protected-mode yes",
        ]
        if self.settings.redis_password is not None:
            lines.append(f"requirepass {self.settings.redis_password.get_secret_value()}")
        config = self.home / "redis.conf"
        config.write_text("\n".join(lines) + "\n")
        config.chmod(0o600)
        return config

    def up(self) -> str:
        """Start Redis if it is not running; a description of what was done."""
        if (pid := self.process.pid()) is not None:
            return f"redis already running (pid {pid}) on 127.0.0.1:{self.port}"
        binary = self._binary()
        ensure_port_free("127.0.0.1", self.port, "Redis", "CRM_REDIS_URL")
        self.home.mkdir(parents=True, exist_ok=True)
        config = self._write_config()
        pid = self.process.start([binary, str(config)], cwd=self.home)
        try:
            waited = wait_until(
                self.answers_ping, 30, "Redis", lambda: self.process.pid() is not None
            )
        except ServiceError as exc:
            raise ServiceError(f"{exc}; last lines of {self.home / 'redis.log'}:\n"
                               f"{self.process.log_tail()}") from exc  # fmt: skip
        return (
            f"redis started (pid {pid}) on 127.0.0.1:{self.port}, AOF on; ready in {waited:.1f} s"
        )

    def answers_ping(self) -> bool:
        """True when Redis answers PING."""
        import redis

        password = self.settings.redis_password
        client = redis.Redis(
            host="127.0.0.1",
            port=self.port,
            password=password.get_secret_value() if password else None,
            socket_timeout=1,
        )
        try:
            return bool(client.ping())
        except redis.RedisError:
            return False
        finally:
            client.close()

    def down(self) -> str:
        stopped = self.process.stop(timeout=20)
        return "redis stopped" if stopped else "redis was not running"

    def status(self) -> str:
        pid = self.process.pid()
        if pid is None:
            return "redis   stopped"
        return f"redis   running  pid {pid}  127.0.0.1:{self.port}  data {self.home / 'data'}"
