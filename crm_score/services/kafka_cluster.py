"""N replicated KRaft Kafka brokers on 127.0.0.1 (each its own controller too: a 3-voter quorum).

Broker ``i`` listens on the ``i``-th address of ``CRM_KAFKA_BOOTSTRAP`` (which must list one
address per broker) and its controller on ``CRM_KAFKA_CONTROLLER_PORT + i``; data and logs live in
``.services/kafka-cluster/<node id>/``. With 3 brokers every topic, including the consumer offsets,
is replicated 3 times with ``min.insync.replicas=2``: a write acknowledged with ``acks=all``
survives the loss of any one broker, and the cluster keeps accepting writes without it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from crm_core.errors import ServiceError
from crm_core.settings import Settings
from crm_score.services._process import ManagedProcess, wait_until
from crm_score.services.kafka import KAFKA_VERSION, LocalKafka, _metadata_ok
from streams.ingest.topics import min_insync_replicas

__all__ = ["KafkaNode", "LocalKafkaCluster"]


@dataclass(frozen=True)
class KafkaNode(LocalKafka):
    """One broker+controller of a local multi-broker cluster."""

    node_id: int = 1
    broker_ports: tuple[int, ...] = ()
    controller_ports: tuple[int, ...] = ()
    cluster_id: str = field(default="", compare=False)

    @property
    def home(self) -> Path:
        return self.settings.services_dir / "kafka-cluster" / str(self.node_id)

    @property
    def port(self) -> int:
        return self.broker_ports[self.node_id - 1]

    @property
    def controller_port(self) -> int:
        return self.controller_ports[self.node_id - 1]

    @property
    def process(self) -> ManagedProcess:
        return ManagedProcess(
            f"kafka-{self.node_id}", self.home / "kafka.pid", self.home / "kafka.out", "kafka.Kafka"
        )

    def _properties(self) -> list[str]:
        replicas = len(self.broker_ports)
        isr = min_insync_replicas(replicas)
        voters = ",".join(
            f"{node}@127.0.0.1:{port}" for node, port in enumerate(self.controller_ports, 1)
        )
        own = {
            "node.id": str(self.node_id),
            "controller.quorum.voters": voters,
            "offsets.topic.replication.factor": str(replicas),
            "transaction.state.log.replication.factor": str(replicas),
            "transaction.state.log.min.isr": str(isr),
            "default.replication.factor": str(replicas),
            "min.insync.replicas": str(isr),
            "unclean.leader.election.enable": "false",
        }
        lines = [line for line in super()._properties() if line.partition("=")[0] not in own]
        return lines + [f"{key}={value}" for key, value in own.items()]

    def _cluster_id(self) -> str:
        return self.cluster_id


@dataclass(frozen=True)
class LocalKafkaCluster:
    """``brokers`` KRaft brokers forming one replicated cluster: start, wait, stop."""

    settings: Settings
    brokers: int = 3

    @property
    def home(self) -> Path:
        return self.settings.services_dir / "kafka-cluster"

    def _broker_ports(self) -> tuple[int, ...]:
        addresses = self.settings.kafka_bootstrap.split(",")
        if len(addresses) != self.brokers:
            raise ServiceError(
                f"--kafka-brokers {self.brokers} needs CRM_KAFKA_BOOTSTRAP to list {self.brokers} "
                f"addresses, one per broker (it lists {len(addresses)}), e.g. "
                "CRM_KAFKA_BOOTSTRAP=127.0.0.1:9192,127.0.0.1:9193,127.0.0.1:9194"
            )
        ports = []
        for address in addresses:
            host, _, port = address.strip().rpartition(":")
            if host not in ("127.0.0.1", "localhost"):
                raise ServiceError(
                    f"CRM_KAFKA_BOOTSTRAP={self.settings.kafka_bootstrap} is not local; "
                    "`crm-score services` only runs brokers on 127.0.0.1."
                )
            ports.append(int(port))
        return tuple(ports)

    def nodes(self) -> list[KafkaNode]:
        """The brokers, node ids 1..N."""
        brokers = self._broker_ports()
        first = self.settings.kafka_controller_port
        controllers = tuple(first + i for i in range(self.brokers))
        clash = set(brokers) & set(controllers)
        if clash:
            raise ServiceError(
                f"Kafka controller ports {controllers} (CRM_KAFKA_CONTROLLER_PORT and the next "
                f"{self.brokers - 1}) overlap the broker ports {sorted(clash)}; choose another "
                "CRM_KAFKA_CONTROLLER_PORT."
            )
        id_file = self.home / "cluster.id"
        cluster_id = id_file.read_text().strip() if id_file.exists() else ""
        if not cluster_id:
            cluster_id = LocalKafka(self.settings)._cluster_id()
            self.home.mkdir(parents=True, exist_ok=True)
            id_file.write_text(cluster_id + "\n")
        return [
            KafkaNode(self.settings, node, brokers, controllers, cluster_id)
            for node in range(1, self.brokers + 1)
        ]

    def up(self) -> str:
        """Start the brokers that are not running; wait until the cluster serves groups."""
        if self.brokers < 3:
            raise ServiceError(
                f"a replicated Kafka needs at least 3 brokers, not {self.brokers}; "
                "use --kafka-brokers 3 (or plain `services up` for one broker)."
            )
        nodes = self.nodes()
        started = [node.launch()[0] for node in nodes if node.process.pid() is None]
        bootstrap = ",".join(f"127.0.0.1:{node.port}" for node in nodes)
        try:
            waited = wait_until(
                self.answers_metadata, 120, "Kafka cluster",
                lambda: all(node.process.pid() is not None for node in nodes),
            )  # fmt: skip
        except ServiceError as exc:
            tails = "\n".join(node.process.log_tail(5) for node in nodes)
            raise ServiceError(
                f"{exc}; last lines of the broker logs under {self.home}:\n{tails}"
            ) from exc
        what = f"started {len(started)} broker(s)" if started else "already running"
        replicas = len(nodes)
        return (
            f"kafka {KAFKA_VERSION} cluster {what} on {bootstrap} (replication {replicas}, "
            f"min.insync.replicas {min_insync_replicas(replicas)}); ready in {waited:.1f} s; "
            f"set CRM_REPLICATION_FACTOR={replicas}"
        )

    def answers_metadata(self) -> bool:
        """True when the cluster answers metadata and group-coordinator requests."""
        import asyncio

        bootstrap = ",".join(f"127.0.0.1:{port}" for port in self._broker_ports())
        return asyncio.run(_metadata_ok(bootstrap))

    def down(self) -> str:
        stopped = 0
        for node_home in sorted(self.home.glob("*/kafka.pid")):
            process = ManagedProcess("kafka", node_home, node_home.with_name("kafka.out"),
                                     "kafka.Kafka")  # fmt: skip
            stopped += process.stop(timeout=30)
        return (
            f"kafka cluster stopped ({stopped} broker(s))"
            if stopped
            else ("kafka cluster was not running")
        )

    def status(self) -> str:
        running = [node for node in self.nodes() if node.process.pid() is not None]
        if not running:
            return "kafka-cluster   stopped"
        ports = ",".join(str(node.port) for node in running)
        return f"kafka-cluster   running  {len(running)}/{self.brokers} brokers  ports {ports}"
