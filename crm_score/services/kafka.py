"""Apache Kafka (KRaft, one broker+controller) from its Maven Central jars, on 127.0.0.1."""

from __future__ import annotations

import asyncio
import base64
import shutil
import socket
import subprocess
import uuid
from dataclasses import dataclass
from pathlib import Path

from crm_core.errors import ServiceError
from crm_core.settings import Settings
from crm_score.services._process import ManagedProcess, ensure_port_free, wait_until

__all__ = ["KAFKA_VERSION", "LocalKafka"]

#: Pinned in ops/kafka/pom.xml; 3.9.x is the last line that still speaks every protocol version
#: aiokafka 0.14 uses (4.0 removed the old ones) and runs KRaft without ZooKeeper.
KAFKA_VERSION = "3.9.2"
_POM = Path(__file__).resolve().parent.parent.parent / "ops" / "kafka" / "pom.xml"


@dataclass(frozen=True)
class LocalKafka:
    """The project's own Kafka broker: fetch jars, format storage, start, wait, stop."""

    settings: Settings

    @property
    def home(self) -> Path:
        return self.settings.services_dir / "kafka"

    @property
    def libs(self) -> Path:
        return self.settings.services_dir / "cache" / f"kafka-{KAFKA_VERSION}-libs"

    @property
    def port(self) -> int:
        host, _, port = self.settings.kafka_bootstrap.split(",")[0].rpartition(":")
        if host not in ("127.0.0.1", "localhost"):
            raise ServiceError(
                f"CRM_KAFKA_BOOTSTRAP={self.settings.kafka_bootstrap} is not local; "
                "`crm-score services` only runs a broker on 127.0.0.1."
            )
        return int(port)

    @property
    def process(self) -> ManagedProcess:
        return ManagedProcess(
            "kafka", self.home / "kafka.pid", self.home / "kafka.out", "kafka.Kafka"
        )

    def fetch(self) -> bool:
        """Copy Kafka's runtime classpath from Maven Central into the cache; False if cached."""
        if (self.libs / f"kafka_2.13-{KAFKA_VERSION}.jar").exists():
            return False
        if shutil.which("mvn") is None:
            raise ServiceError(
                "Maven (mvn) is needed to fetch Kafka's jars and was not found. Install it "
                "(Debian: apt-get install maven) or use docker-compose instead."
            )
        partial = self.libs.with_name(self.libs.name + ".partial")
        shutil.rmtree(partial, ignore_errors=True)
        result = subprocess.run(
            [
                "mvn", "-q", "-B", "-f", str(_POM), "dependency:copy-dependencies",
                f"-DoutputDirectory={partial}", "-DincludeScope=runtime",
                f"-Dkafka.version={KAFKA_VERSION}",
            ],
            capture_output=True,
            text=True,
            check=False,
        )  # fmt: skip
        if result.returncode != 0:
            raise ServiceError(
                "Maven could not fetch Kafka's jars from Maven Central:\n"
                + (result.stdout + result.stderr)[-2000:]
            )
        partial.rename(self.libs)
        return True

    @property
    def controller_port(self) -> int:
        return self.settings.kafka_controller_port

    def _properties(self) -> list[str]:
        """This node's server.properties: one broker that is its own controller."""
        ctrl = self.controller_port
        return [
            "process.roles=broker,controller",
            "node.id=1",
            f"controller.quorum.voters=1@127.0.0.1:{ctrl}",
            f"listeners=PLAINTEXT://127.0.0.1:{self.port},CONTROLLER://127.0.0.1:{ctrl}",
            f"advertised.listeners=PLAINTEXT://127.0.0.1:{self.port}",
            "controller.listener.names=CONTROLLER",
            "listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
            "inter.broker.listener.name=PLAINTEXT",
            f"log.dirs={self.home / 'data'}",
            f"num.partitions={self.settings.partitions}",
            "offsets.topic.replication.factor=1",
            "offsets.topic.num.partitions=8",
            "transaction.state.log.replication.factor=1",
            "transaction.state.log.min.isr=1",
            "group.initial.rebalance.delay.ms=0",
            "auto.create.topics.enable=true",
            "log.retention.hours=-1",
        ]

    def _cluster_id(self) -> str:
        """A new KRaft cluster id (never starting with '-': the storage tool reads options)."""
        cluster_id = "-"
        while cluster_id.startswith("-"):
            cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
        return cluster_id

    def _write_config(self) -> Path:
        config = self.home / "server.properties"
        config.write_text("\n".join(self._properties()) + "\n")
        (self.home / "log4j.properties").write_text(
            "log4j.rootLogger=WARN, file\n"
            "log4j.appender.file=org.apache.log4j.RollingFileAppender\n"
            f"log4j.appender.file.File={self.home / 'kafka.log'}\n"
            "log4j.appender.file.MaxFileSize=50MB\nlog4j.appender.file.MaxBackupIndex=2\n"
            "log4j.appender.file.layout=org.apache.log4j.PatternLayout\n"
            "log4j.appender.file.layout.ConversionPattern=[%d] %p %m (%c)%n\n"
            "log4j.logger.kafka=INFO\nlog4j.logger.org.apache.kafka=INFO\n"
        )
        return config

    def _java(self) -> list[str]:
        java = shutil.which("java")
        if java is None:
            raise ServiceError(
                "Java 17+ is needed to run Kafka and was not found. Install it "
                "(Debian: apt-get install openjdk-17-jre-headless) or use docker-compose instead."
            )
        return [
            java,
            f"-Xmx{self.settings.kafka_heap}",
            "-XX:+UseG1GC",
            f"-Dlog4j.configuration=file:{self.home / 'log4j.properties'}",
            "-cp",
            f"{self.libs}/*",
        ]

    def launch(self) -> tuple[int, bool]:
        """Check ports, fetch jars, format storage once, start the node without waiting for it;
        its PID and whether the jars were fetched."""
        ensure_port_free("127.0.0.1", self.port, "Kafka", "CRM_KAFKA_BOOTSTRAP")
        ensure_port_free(
            "127.0.0.1", self.controller_port, "Kafka's controller", "CRM_KAFKA_CONTROLLER_PORT"
        )
        self.home.mkdir(parents=True, exist_ok=True)
        fetched = self.fetch()
        java = self._java()
        config = self._write_config()
        if not (self.home / "data" / "meta.properties").exists():
            fmt = subprocess.run(
                [*java, "kafka.tools.StorageTool", "format", "-t", self._cluster_id(),
                 "-c", str(config)],
                capture_output=True,
                text=True,
                check=False,
            )  # fmt: skip
            if fmt.returncode != 0:
                raise ServiceError(f"formatting Kafka storage failed:\n{fmt.stdout}{fmt.stderr}")
        return self.process.start([*java, "kafka.Kafka", str(config)], cwd=self.home), fetched

    def up(self) -> str:
        """Start the broker if it is not running; a description of what was done."""
        if (pid := self.process.pid()) is not None:
            return f"kafka already running (pid {pid}) on 127.0.0.1:{self.port}"
        pid, fetched = self.launch()
        try:
            waited = wait_until(
                self.answers_metadata, 90, "Kafka", lambda: self.process.pid() is not None
            )
        except ServiceError as exc:
            raise ServiceError(f"{exc}; last lines of {self.home / 'kafka.log'}:\n"
                               f"{self.process.log_tail()}") from exc  # fmt: skip
        how = "fetched jars, " if fetched else ""
        return (
            f"kafka {KAFKA_VERSION} started (pid {pid}) on 127.0.0.1:{self.port}; "
            f"{how}ready in {waited:.1f} s"
        )

    def answers_metadata(self) -> bool:
        """True when the broker answers a metadata request."""
        return asyncio.run(_metadata_ok(f"127.0.0.1:{self.port}"))

    def down(self) -> str:
        stopped = self.process.stop(timeout=30)
        return "kafka stopped" if stopped else "kafka was not running"

    def status(self) -> str:
        pid = self.process.pid()
        if pid is None:
            return "kafka   stopped"
        return f"kafka   running  pid {pid}  127.0.0.1:{self.port}  data {self.home / 'data'}"


async def _metadata_ok(bootstrap: str) -> bool:
    from aiokafka.admin import AIOKafkaAdminClient

    host, _, port = bootstrap.split(",")[0].rpartition(":")
    with socket.socket() as sock:
        sock.settimeout(0.5)
        if sock.connect_ex((host, int(port))) != 0:
            return False
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=2000)
    try:
        await admin.start()
        await admin.list_topics()
        # Ready means ready for consumer groups: the first FindCoordinator creates
        # __consumer_offsets, and clients see GroupCoordinatorNotAvailable until it exists.
        await admin.find_coordinator("crm-scoring-readiness")
    except Exception:
        return False
    finally:
        await admin.close()
    return True
