"""The InfluxDB sink against the real InfluxDB through an outage: nothing lost, resumes by itself."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from confluent_kafka import Producer
from influxdb_client import InfluxDBClient

from cems.infra.secrets import SecretStore
from cems.infra.settings import InfraSettings
from cems.topics import ensure_topics
from contracts.topics import topics
from tests.rulekit import minutes

from .helpers import CemsProcess, free_port, infra_env

pytestmark = pytest.mark.integration


class Proxy:
    """A TCP relay to InfluxDB that can be cut and restored, standing in for an outage."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.port = free_port()
        self.server: socket.socket | None = None
        self.conns: list[socket.socket] = []

    def up(self) -> None:
        self.server = socket.create_server(("127.0.0.1", self.port), reuse_port=True)
        threading.Thread(target=self._accept, args=(self.server,), daemon=True).start()

    def down(self) -> None:
        if self.server is not None:
            self.server.close()
            self.server = None
        for c in self.conns:
            with contextlib.suppress(OSError):
                c.shutdown(socket.SHUT_RDWR)
            c.close()
        self.conns.clear()

    def _accept(self, server: socket.socket) -> None:
        while True:
            try:
                client, _ = server.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.target)
            self.conns += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            with contextlib.suppress(OSError):
                dst.shutdown(socket.SHUT_WR)


def test_sink_keeps_everything_through_an_influxdb_outage(
    infra: InfraSettings, secrets: SecretStore, unique: str, tmp_path: Path
) -> None:
    ns = f"s{unique}"
    topic_set = topics(ns)
    ensure_topics(infra.kafka_bootstrap, topic_set.all())
    proxy = Proxy((infra.host, infra.influxdb_port))  # down: InfluxDB unreachable for the sink
    env = {**infra_env(infra), "CEMS_INFLUXDB_URL": f"http://127.0.0.1:{proxy.port}", "CEMS_SINK_MAX_WAIT_S": "0.2"}
    sink = CemsProcess(
        ["sink", "--namespace", ns, "--group", f"sink-{unique}"], tmp_path / "sink.log", b"sink running", env
    )
    t0 = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(hours=3)
    producer = Producer({"bootstrap.servers": infra.kafka_bootstrap})

    def produce(first: int, count: int) -> None:
        for r in minutes(t0 + timedelta(minutes=first), count, f"stack-{unique}"):
            producer.produce(topic_set.readings.name, key=r.stack.encode(), value=r.model_dump_json().encode())
        producer.flush()

    try:
        sink.start()
        produce(0, 60)
        time.sleep(3)  # the sink fails to write and retries
        assert "influxdb write of" in sink.tail()
        sink.kill()  # a crash during the outage: its uncommitted batch comes again
        sink.start()
        produce(60, 60)
        time.sleep(2)
        proxy.up()  # InfluxDB reachable again: the sink resumes by itself
        query = f'''
            from(bucket: "{infra.influxdb_bucket}")
              |> range(start: {(t0 - timedelta(minutes=5)).isoformat()}, stop: {(t0 + timedelta(hours=3)).isoformat()})
              |> filter(fn: (r) => r._measurement == "reading" and r.ns == "{ns}" and r._field == "so2")
        '''
        times: list[datetime] = []
        with InfluxDBClient(url=infra.influxdb_url, token=secrets.influxdb_token(), org=infra.influxdb_org) as client:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                times = [rec.get_time() for t in client.query_api().query(query) for rec in t.records]
                if len(times) >= 120:
                    break
                time.sleep(1)
        assert sorted(times) == [t0 + timedelta(minutes=i, seconds=30) for i in range(120)], sink.tail()
    finally:
        sink.stop()
        proxy.down()
