"""A local Redis Cluster of N masters from Debian's ``redis-server``, AOF on, on 127.0.0.1.

Node ``i`` listens on ``CRM_REDIS_CLUSTER_PORT + i`` (its cluster bus on that port + 10000) and
keeps its data, ``nodes.conf`` and log under ``.services/redis-cluster/<port>/``. The first ``up``
assigns the 16384 slots evenly (``redis-cli --cluster create``); a later ``up`` restarts the nodes
from their ``nodes.conf`` and AOF. Point the pipeline at it with the URL that ``up`` prints
(``redis+cluster://127.0.0.1:7000,...``).
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from crm_core.errors import ServiceError
from crm_core.settings import Settings
from crm_score.services._process import ManagedProcess, ensure_port_free, wait_until
from crm_score.services.redis import LocalRedis

__all__ = ["LocalRedisCluster"]

#: Redis Cluster's fixed number of hash slots.
SLOTS = 16384


@dataclass(frozen=True)
class LocalRedisCluster:
    """``masters`` Redis nodes forming one cluster (no replicas): start, join, wait, stop."""

    settings: Settings
    masters: int = 3

    @property
    def home(self) -> Path:
        return self.settings.services_dir / "redis-cluster"

    @property
    def ports(self) -> list[int]:
        first = self.settings.redis_cluster_port
        return [first + i for i in range(self.masters)]

    @property
    def url(self) -> str:
        """The ``CRM_REDIS_URL`` that names this cluster."""
        return "redis+cluster://" + ",".join(f"127.0.0.1:{port}" for port in self.ports)

    def process(self, port: int) -> ManagedProcess:
        """The node on ``port``."""
        node = self.home / str(port)
        return ManagedProcess(
            f"redis-cluster-{port}", node / "redis.pid", node / "redis.out", "redis-server"
        )

    def _write_config(self, port: int) -> Path:
        node = self.home / str(port)
        (node / "data").mkdir(parents=True, exist_ok=True)
        lines = [
            "bind 127.0.0.1",
            f"port {port}",
            f"dir {node / 'data'}",
            "daemonize no",
            "cluster-enabled yes",
            "cluster-config-file nodes.conf",
            "cluster-node-timeout 5000",
            "appendonly yes",
            "appendfsync everysec",
            'save ""',
            f"logfile {node / 'redis.log'}",
            "protected-mode yes",
        ]
        if self.settings.redis_password is not None:
            secret = self.settings.redis_password.get_secret_value()
            lines += [f"requirepass {secret}", f"masterauth {secret}"]
        config = node / "redis.conf"
        config.write_text("\n".join(lines) + "\n")
        config.chmod(0o600)
        return config

    def _cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        cli = shutil.which("redis-cli")
        if cli is None:
            raise ServiceError(
                "redis-cli was not found; it ships with redis-server "
                "(Debian: sudo apt-get install redis-server)."
            )
        auth: list[str] = []
        if self.settings.redis_password is not None:
            auth = ["--no-auth-warning", "-a", self.settings.redis_password.get_secret_value()]
        return subprocess.run(
            [cli, *auth, *args], capture_output=True, text=True, timeout=60, check=False
        )

    def cluster_info(self, port: int) -> dict[str, str]:
        """CLUSTER INFO of the node on ``port`` as a dict (empty if it does not answer)."""
        done = self._cli("-h", "127.0.0.1", "-p", str(port), "cluster", "info")
        if done.returncode != 0 or "cluster_state" not in done.stdout:
            return {}
        pairs = (line.strip().partition(":") for line in done.stdout.splitlines())
        return {key: value for key, _, value in pairs if key}

    def healthy(self) -> bool:
        """True when every node reports all slots assigned and the cluster state ok."""
        for port in self.ports:
            info = self.cluster_info(port)
            if info.get("cluster_state") != "ok" or info.get("cluster_slots_assigned") != str(
                SLOTS
            ):
                return False
        return True

    def _all_alive(self) -> bool:
        return all(self.process(port).pid() is not None for port in self.ports)

    def up(self) -> str:
        """Start the nodes that are not running and form the cluster if it has no slots yet."""
        if self.masters < 3:
            raise ServiceError(
                f"a Redis Cluster needs at least 3 masters, not {self.masters}; "
                "use --redis-cluster 3 (or plain `services up` for one Redis)."
            )
        binary = LocalRedis(self.settings)._binary()
        started = []
        for port in self.ports:
            if self.process(port).pid() is not None:
                continue
            ensure_port_free("127.0.0.1", port, "Redis Cluster", "CRM_REDIS_CLUSTER_PORT")
            ensure_port_free(
                "127.0.0.1", port + 10000, "Redis Cluster's bus", "CRM_REDIS_CLUSTER_PORT"
            )
            config = self._write_config(port)
            self.process(port).start([binary, str(config)], cwd=config.parent)
            started.append(port)
        try:
            waited = wait_until(
                lambda: all(self.cluster_info(port) for port in self.ports),
                30, "Redis Cluster nodes", self._all_alive,
            )  # fmt: skip
            created = ""
            if self.cluster_info(self.ports[0]).get("cluster_slots_assigned") == "0":
                nodes = [f"127.0.0.1:{port}" for port in self.ports]
                done = self._cli("--cluster", "create", *nodes, "--cluster-replicas", "0",
                                 "--cluster-yes")  # fmt: skip
                if done.returncode != 0:
                    raise ServiceError(f"redis-cli --cluster create failed:\n{done.stdout[-2000:]}"
                                       f"{done.stderr[-2000:]}")  # fmt: skip
                created = f", {SLOTS} slots assigned to {self.masters} masters"
            waited += wait_until(self.healthy, 60, "Redis Cluster", self._all_alive)
        except ServiceError as exc:
            tails = "\n".join(self.process(port).log_tail(5) for port in self.ports)
            raise ServiceError(
                f"{exc}; last lines of the node logs under {self.home}:\n{tails}"
            ) from exc
        what = f"started {len(started)} node(s)" if started else "already running"
        return (
            f"redis cluster {what} on 127.0.0.1:{self.ports[0]}-{self.ports[-1]}, AOF on{created}; "
            f"ready in {waited:.1f} s; CRM_REDIS_URL={self.url}"
        )

    def node_id(self, port: int) -> str:
        """The cluster's id of the node on ``port``."""
        done = self._cli("-h", "127.0.0.1", "-p", str(port), "cluster", "myid")
        if done.returncode != 0 or not done.stdout.strip():
            raise ServiceError(f"the Redis Cluster node on port {port} did not say its id: "
                               f"{done.stdout}{done.stderr}; is it running?")  # fmt: skip
        return done.stdout.strip()

    def reshard(self, slots: int, source: int, target: int) -> str:
        """Move ``slots`` hash slots (and their keys) from the node on port ``source`` to the
        one on ``target`` (``redis-cli --cluster reshard``), while clients keep using them."""
        done = self._cli(
            "--cluster", "reshard", f"127.0.0.1:{source}",
            "--cluster-from", self.node_id(source), "--cluster-to", self.node_id(target),
            "--cluster-slots", str(slots), "--cluster-yes",
        )  # fmt: skip
        if done.returncode != 0:
            raise ServiceError(f"redis-cli --cluster reshard failed:\n{done.stdout[-2000:]}"
                               f"{done.stderr[-2000:]}")  # fmt: skip
        return f"{slots} slots moved from 127.0.0.1:{source} to 127.0.0.1:{target}"

    def down(self) -> str:
        stopped = 0
        for pid_file in sorted(self.home.glob("*/redis.pid")):  # every node, whatever the count
            process = ManagedProcess("redis-cluster", pid_file, pid_file.with_name("redis.out"),
                                     "redis-server")  # fmt: skip
            stopped += process.stop(timeout=20)
        return (
            f"redis cluster stopped ({stopped} node(s))"
            if stopped
            else ("redis cluster was not running")
        )

    def status(self) -> str:
        running = [port for port in self.ports if self.process(port).pid() is not None]
        if not running:
            return "redis-cluster   stopped"
        state = "ok" if self.healthy() else "not ok"
        return (
            f"redis-cluster   running  {len(running)}/{self.masters} nodes  "
            f"127.0.0.1:{self.ports[0]}-{self.ports[-1]}  state {state}"
        )
