"""Apache Kafka 4.x, KRaft combined mode, single node, from its Maven Central jars."""

from __future__ import annotations

import os
import shutil
import socket
import uuid
from pathlib import Path

from contracts.errors import InfrastructureError

from .process import ManagedServer, run_checked
from .settings import REPO_ROOT

POM = REPO_ROOT / "scripts" / "infra" / "kafka" / "pom.xml"

LOG4J2 = """\
status = warn
appender.console.type = Console
appender.console.name = STDOUT
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.stdout.ref = STDOUT
logger.kafka.name = kafka
logger.kafka.level = INFO
logger.apache.name = org.apache.kafka
logger.apache.level = WARN
"""


class KafkaServer(ManagedServer):
    name = "kafka"
    process_marker = "kafka.Kafka"

    @property
    def endpoint(self) -> str:
        return self.settings.kafka_bootstrap

    @property
    def properties_path(self) -> Path:
        return self.home / "server.properties"

    def server_properties(self) -> str:
        s = self.settings
        return "\n".join(
            [
                "process.roles=broker,controller",
                "node.id=1",
                f"controller.quorum.voters=1@{s.host}:{s.kafka_controller_port}",
                f"listeners=PLAINTEXT://{s.host}:{s.kafka_port},CONTROLLER://{s.host}:{s.kafka_controller_port}",
                f"advertised.listeners=PLAINTEXT://{s.host}:{s.kafka_port}",
                "controller.listener.names=CONTROLLER",
                "inter.broker.listener.name=PLAINTEXT",
                "listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
                f"log.dirs={self.home / 'data'}",
                # the project creates its topics itself, with their partitions and retention
                "auto.create.topics.enable=false",
                "num.partitions=1",
                "offsets.topic.replication.factor=1",
                "offsets.topic.num.partitions=10",
                "transaction.state.log.replication.factor=1",
                "transaction.state.log.min.isr=1",
                "share.coordinator.state.topic.replication.factor=1",
                "share.coordinator.state.topic.min.isr=1",
                "group.initial.rebalance.delay.ms=0",
                "log.retention.check.interval.ms=60000",
                "",
            ]
        )

    def install(self) -> Path:
        """Resolve the broker jars with Maven once; later starts reuse them."""
        libs = self.settings.kafka_libs_dir
        marker = libs / ".complete"
        if marker.exists():
            return libs
        if shutil.which("mvn") is None:
            raise InfrastructureError("kafka: Maven ('mvn') is needed to fetch the Kafka jars; install it")
        tmp = libs.with_name("libs.partial")
        shutil.rmtree(tmp, ignore_errors=True)
        run_checked(
            [
                "mvn",
                "-q",
                "-B",
                "-f",
                str(POM),
                "dependency:copy-dependencies",
                f"-Dkafka.version={self.settings.kafka_version}",
                f"-DoutputDirectory={tmp}",
                "-DincludeScope=runtime",
            ],
            "kafka: resolving jars from Maven Central",
        )
        shutil.rmtree(libs, ignore_errors=True)
        tmp.rename(libs)
        marker.write_text(self.settings.kafka_version + "\n")
        return libs

    def _java(self, main: str, *args: str, heap: str = "-Xmx256m") -> list[str]:
        libs = self.settings.kafka_libs_dir
        return [
            shutil.which("java") or "java",
            *heap.split(),
            f"-Dlog4j2.configurationFile={self.home / 'log4j2.properties'}",
            "-Djava.awt.headless=true",
            "-cp",
            f"{libs}/*",
            main,
            *args,
        ]

    def prepare(self) -> None:
        self.install()
        self.home.mkdir(parents=True, exist_ok=True)
        (self.home / "log4j2.properties").write_text(LOG4J2)
        self.properties_path.write_text(self.server_properties())
        if (self.home / "data" / "meta.properties").exists():
            return
        cluster_file = self.home / "cluster.id"
        if not cluster_file.exists():
            # Kafka wants a base64url-encoded 16-byte uuid without padding
            import base64

            cluster_file.write_text(base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=") + "\n")
        run_checked(
            self._java(
                "kafka.tools.StorageTool",
                "format",
                "--config",
                str(self.properties_path),
                "--cluster-id",
                cluster_file.read_text().strip(),
                "--ignore-formatted",
            ),
            "kafka: formatting KRaft storage",
        )

    def command(self) -> list[str]:
        return self._java("kafka.Kafka", str(self.properties_path), heap=self.settings.kafka_heap)

    def env(self) -> dict[str, str]:
        return {**os.environ, "KAFKA_LOG4J_OPTS": ""}

    def check(self) -> str | None:
        try:
            with socket.create_connection((self.settings.host, self.settings.kafka_port), timeout=2):
                pass
        except OSError as exc:
            return f"port {self.settings.kafka_port} not accepting connections ({exc})"
        from kafka import KafkaAdminClient  # kafka-python, imported lazily: slow import
        from kafka.errors import KafkaError

        try:
            admin = KafkaAdminClient(
                bootstrap_servers=self.endpoint, request_timeout_ms=5000, client_id="cems-infra-health"
            )
            try:
                cluster = admin.describe_cluster()
            finally:
                admin.close()
        except KafkaError as exc:
            return f"broker not answering metadata requests ({exc})"
        if not cluster.get("brokers"):
            return "no broker registered yet"
        return None
