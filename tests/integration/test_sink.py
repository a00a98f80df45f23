"""The InfluxDB sink against the real InfluxDB and Kafka: through an outage, a 429 and a 503
nothing is lost and it resumes by itself; records InfluxDB refuses, or that are not the
contract, end in the dead-letter topic while the rest is stored; a wrong token or bucket
stops it naming the setting; its metrics count what happened."""

from __future__ import annotations

import base64
import contextlib
import http.server
import os
import re
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, Message, Producer, TopicPartition
from influxdb_client import InfluxDBClient, Point, WritePrecision
from influxdb_client.client.write_api import SYNCHRONOUS

from cems.infra.secrets import SecretStore
from cems.infra.settings import REPO_ROOT, InfraSettings
from cems.topics import ensure_topics
from contracts.parameters import Unit
from contracts.reading import Measurement
from contracts.topics import Topics, topics
from tests.rulekit import minutes

from .helpers import CemsProcess, consume_all, free_port, infra_env, prometheus_samples

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
    port = free_port()
    args = ["sink", "--namespace", ns, "--group", f"sink-{unique}", "--metrics-port", str(port)]
    sink = CemsProcess(args, tmp_path / "sink.log", b"sink running", env)
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
        assert re.search(r"influxdb write of 60 points failed \(attempt 2, connection\)", sink.tail()), sink.tail()
        assert sink_metrics(port)['cems_sink_retries_total{cause="connection"}'] >= 2
        assert sink_metrics(port).get('cems_sink_points_written_total{measurement="reading"}', 0) == 0
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
        # the restarted sink read the uncommitted 60 again and the next 60, and wrote them all
        m = wait_metrics(port, {'cems_sink_points_written_total{measurement="reading"}': 120.0})
        assert m[f'cems_sink_consumed_total{{topic="{topic_set.readings.name}"}}'] == 120
        assert m.get('cems_sink_dead_letters_total{reason="influx_rejected"}', 0) == 0
    finally:
        sink.stop()
        proxy.down()


def sink_metrics(port: int) -> dict[str, float]:
    """The sink's Prometheus samples, ``name{labels}`` -> value."""
    return prometheus_samples(port)


def wait_metrics(port: int, expect: dict[str, float], timeout_s: float = 30) -> dict[str, float]:
    """The samples once ``expect`` holds (or at the deadline)."""
    deadline = time.monotonic() + timeout_s
    while True:
        got = sink_metrics(port)
        if all(got.get(k) == v for k, v in expect.items()) or time.monotonic() > deadline:
            return got
        time.sleep(0.2)


def committed(bootstrap: str, group: str, topic: str, partitions: int) -> list[int]:
    """The group's committed offsets of a topic's partitions (-1001: none, as for a partition
    that never had a record)."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False})
    try:
        return [tp.offset for tp in consumer.committed([TopicPartition(topic, p) for p in range(partitions)], 10)]
    finally:
        consumer.close()


def end_offsets(bootstrap: str, topic: str, partitions: int) -> list[int]:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "end-offsets", "enable.auto.commit": False})
    try:
        return [consumer.get_watermark_offsets(TopicPartition(topic, p), 10)[1] for p in range(partitions)]
    finally:
        consumer.close()


class Produced:
    """Records produced to Kafka with their partition and offset, as a dead letter names them."""

    def __init__(self, bootstrap: str) -> None:
        self.producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True})
        self.origins: dict[bytes, str] = {}

    def send(self, topic: str, key: bytes, value: bytes) -> None:
        def done(err: Any, msg: Message) -> None:
            assert err is None, err
            self.origins[value] = f"kafka:{msg.topic()}/{msg.partition()}@{msg.offset()}"

        self.producer.produce(topic, key=key, value=value, on_delivery=done)

    def flush(self) -> None:
        assert self.producer.flush(30) == 0


def reading_points(
    infra: InfraSettings, token: str, ns: str, start: datetime, stop: datetime
) -> list[tuple[str, datetime]]:
    query = f'''
        from(bucket: "{infra.influxdb_bucket}")
          |> range(start: {start.isoformat()}, stop: {stop.isoformat()})
          |> filter(fn: (r) => r._measurement == "reading" and r.ns == "{ns}")
          |> keep(columns: ["_time", "stack", "_field"])
    '''
    with InfluxDBClient(url=infra.influxdb_url, token=token, org=infra.influxdb_org) as client:
        tables = client.query_api().query(query)
    return sorted({(str(rec.values["stack"]), rec.get_time()) for t in tables for rec in t.records})


def test_refused_and_unreadable_records_go_to_dead_letters_and_the_rest_is_stored(
    infra: InfraSettings, secrets: SecretStore, unique: str, tmp_path: Path
) -> None:
    """One batch: 120 readings, one of them with a field InfluxDB refuses (a type conflict:
    already a string in this shard, now a float), one not JSON, one not a reading. The 120
    are stored, the three are dead letters naming their Kafka origin, the offsets are
    committed, and the metrics say so."""
    ns = f"s{unique}"
    topic_set = topics(ns)
    ensure_topics(infra.kafka_bootstrap, topic_set.all())
    token = secrets.influxdb_token()
    t0 = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(hours=2)
    conflict = f"p{unique}_flag"
    # the field exists as a string in this shard (same measurement and time), for another namespace
    with InfluxDBClient(url=infra.influxdb_url, token=token, org=infra.influxdb_org) as client:
        seed = Point("reading").tag("ns", f"seed-{ns}").field(conflict, "N").time(t0, WritePrecision.MS)
        client.write_api(write_options=SYNCHRONOUS).write(bucket=infra.influxdb_bucket, record=seed)

    good = [r for i in range(4) for r in minutes(t0, 30, f"stack-{unique}-{i}")]
    poison = good[0].model_copy(
        update={"stack": f"stack-{unique}-x", "values": {conflict: Measurement(value=1.0, unit=Unit.MG_M3)}}
    )
    not_json, not_a_reading = b'{"stack": "s", "values": ', b'{"stack": "s", "values": {}}'
    produced = Produced(infra.kafka_bootstrap)
    records = [(r.stack.encode(), r.model_dump_json().encode()) for r in good]
    records[50:50] = [(poison.stack.encode(), poison.model_dump_json().encode())]
    records[80:80] = [(b"s", not_json), (b"s", not_a_reading)]
    for key, value in records:
        produced.send(topic_set.readings.name, key, value)
    produced.flush()

    port, group = free_port(), f"sink-{unique}"
    sink = CemsProcess(
        ["sink", "--namespace", ns, "--group", group, "--metrics-port", str(port)],
        tmp_path / "sink.log",
        b"sink running",
        {**infra_env(infra), "CEMS_SINK_MAX_WAIT_S": "0.5"},
    )
    started = time.time()
    try:
        sink.start()
        ends = [-1001 if end == 0 else end for end in end_offsets(infra.kafka_bootstrap, topic_set.readings.name, 6)]
        deadline = time.monotonic() + 60
        while committed(infra.kafka_bootstrap, group, topic_set.readings.name, 6) != ends:
            assert time.monotonic() < deadline, f"offsets not committed: {sink.tail()}"
            time.sleep(0.5)

        stored = reading_points(infra, token, ns, t0 - timedelta(minutes=1), t0 + timedelta(hours=1))
        assert stored == sorted((r.stack, r.event_time) for r in good), sink.tail()

        letters = consume_all(infra.kafka_bootstrap, topic_set.dead_letters.name, expect=3, timeout_s=30)
        assert sorted(d["reason"] for d in letters) == ["influx_rejected", "malformed_json", "schema_invalid"]
        by_reason = {d["reason"]: d for d in letters}
        refused = by_reason["influx_rejected"]
        assert refused["origin"] == produced.origins[poison.model_dump_json().encode()]
        assert "422" in refused["detail"] and "field type conflict" in refused["detail"], refused["detail"]
        assert conflict in refused["detail"]
        assert base64.b64decode(refused["payload_b64"]) == poison.model_dump_json().encode()
        assert (refused["stack"], refused["enterprise"], refused["mn"]) == (poison.stack, "e1", poison.mn)
        assert by_reason["malformed_json"]["origin"] == produced.origins[not_json]
        assert by_reason["malformed_json"]["payload_text"] == not_json.decode()
        assert by_reason["schema_invalid"]["origin"] == produced.origins[not_a_reading]
        assert "enterprise" in by_reason["schema_invalid"]["detail"]  # a missing field, named

        readings_topic = topic_set.readings.name
        m = wait_metrics(port, {f'cems_sink_consumer_lag{{topic="{readings_topic}"}}': 0.0})
        assert m[f'cems_sink_consumed_total{{topic="{readings_topic}"}}'] == 123
        assert m['cems_sink_points_written_total{measurement="reading"}'] == 120
        assert m['cems_sink_refused_points_total{measurement="reading"}'] == 1
        for reason in ("influx_rejected", "malformed_json", "schema_invalid"):
            assert m[f'cems_sink_dead_letters_total{{reason="{reason}"}}'] == 1, reason
        assert m[f'cems_sink_consumer_lag{{topic="{readings_topic}"}}'] == 0
        assert not [k for k in m if k.startswith(("cems_sink_retries_total{", "cems_sink_fatal_errors_total{"))]
        assert m["cems_sink_batches_total"] >= 1
        assert m["cems_sink_write_seconds_count"] >= 2  # the batch, then its halves
        assert started <= m["cems_sink_last_write_timestamp_seconds"] <= time.time()
        assert "influx_rejected" in sink.tail(100_000) and "Traceback" not in sink.tail(100_000)
    finally:
        sink.stop()


@pytest.mark.parametrize(
    ("setting", "value", "says"),
    [
        ("CEMS_INFLUXDB_TOKEN", "not-a-token", "answered 401"),
        ("CEMS_INFLUXDB_BUCKET", "no-such-bucket", 'bucket "no-such-bucket" not found'),
    ],
)
def test_a_sink_that_influxdb_refuses_stops_naming_the_setting(
    infra: InfraSettings, unique: str, setting: str, value: str, says: str
) -> None:
    """Records are waiting; InfluxDB refuses the sink itself: it exits 1 within seconds,
    naming the setting, and commits nothing."""
    ns = f"s{unique}"
    topic_set = topics(ns)
    ensure_topics(infra.kafka_bootstrap, topic_set.all())
    produce_readings(infra.kafka_bootstrap, topic_set, f"stack-{unique}", 5)
    group = f"sink-{unique}"
    env = {**os.environ, **infra_env(infra), setting: value}
    started = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "cems.cli", "sink", "--namespace", ns, "--group", group],
        env=env, cwd=REPO_ROOT, capture_output=True, timeout=60, check=False,
    )  # fmt: skip
    elapsed = time.monotonic() - started
    output = proc.stdout.decode() + proc.stderr.decode()
    assert proc.returncode == 1, output
    stderr = proc.stderr.decode()
    said = " ".join(stderr[stderr.rfind("error: ") :].split())  # the CLI's `error: ...`, unwrapped
    assert said.startswith("error: InfluxDB at") and setting in said and says in said, output
    assert "Traceback" not in output
    assert elapsed < 30, elapsed
    assert committed(infra.kafka_bootstrap, group, topic_set.readings.name, 6) == [-1001] * 6


def produce_readings(bootstrap: str, topic_set: Topics, stack: str, count: int) -> None:
    producer = Producer({"bootstrap.servers": bootstrap})
    t0 = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(hours=1)
    for r in minutes(t0, count, stack):
        producer.produce(topic_set.readings.name, key=r.stack.encode(), value=r.model_dump_json().encode())
    assert producer.flush(30) == 0


class Throttling:
    """An HTTP relay to InfluxDB that answers the first writes with the given statuses (and
    headers) instead of passing them on, and notes when each write came."""

    def __init__(self, target: str, answers: list[tuple[int, dict[str, str]]]) -> None:
        self.target = target
        self.answers = list(answers)
        self.writes: list[tuple[float, int]] = []  # (monotonic time, status answered)
        relay = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if body and relay.answers:  # a write with points (not the sink's empty check)
                    status, headers = relay.answers.pop(0)
                    relay.writes.append((time.monotonic(), status))
                    self._answer(status, headers, b'{"code":"x","message":"throttled by the test"}')
                    return
                request = urllib.request.Request(
                    relay.target + self.path, data=body, method="POST",
                    headers={k: v for k, v in self.headers.items() if k.lower() != "host"},
                )  # fmt: skip
                try:
                    with urllib.request.urlopen(request, timeout=10) as resp:
                        status, data = resp.status, resp.read()
                except urllib.error.HTTPError as exc:
                    status, data = exc.code, exc.read()
                if body:
                    relay.writes.append((time.monotonic(), status))
                self._answer(status, {}, data)

            def _answer(self, status: int, headers: dict[str, str], data: bytes) -> None:
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *_args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_a_throttled_or_unavailable_influxdb_gets_the_batch_again_after_retry_after(
    infra: InfraSettings, secrets: SecretStore, unique: str, tmp_path: Path
) -> None:
    """InfluxDB answers the first write 429 with Retry-After: 2, the second 503: the sink waits
    2 s (not its 0.2 s back-off), then 0.4 s, writes the batch on the third try, and commits."""
    ns = f"s{unique}"
    topic_set = topics(ns)
    ensure_topics(infra.kafka_bootstrap, topic_set.all())
    relay = Throttling(infra.influxdb_url, [(429, {"Retry-After": "2"}), (503, {})])
    port, group = free_port(), f"sink-{unique}"
    env = {
        **infra_env(infra), "CEMS_INFLUXDB_URL": relay.url, "CEMS_SINK_MAX_WAIT_S": "0.5",
        "CEMS_SINK_RETRY_INITIAL_S": "0.2",
    }  # fmt: skip
    sink = CemsProcess(
        ["sink", "--namespace", ns, "--group", group, "--metrics-port", str(port)], tmp_path / "sink.log",
        b"sink running", env,
    )  # fmt: skip
    t0 = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(hours=1)
    good = minutes(t0, 30, f"stack-{unique}")
    producer = Producer({"bootstrap.servers": infra.kafka_bootstrap})
    for r in good:  # all in Kafka before the sink starts: one batch
        producer.produce(topic_set.readings.name, key=r.stack.encode(), value=r.model_dump_json().encode())
    assert producer.flush(30) == 0
    try:
        sink.start()
        m = wait_metrics(port, {'cems_sink_points_written_total{measurement="reading"}': 30.0})
        assert m['cems_sink_points_written_total{measurement="reading"}'] == 30, sink.tail()
        assert [status for _, status in relay.writes] == [429, 503, 204], relay.writes
        (t_429, _), (t_503, _), (t_ok, _) = relay.writes
        assert 2.0 <= t_503 - t_429 < 4.0  # Retry-After, not the 0.2 s back-off
        assert 0.4 <= t_ok - t_503 < 1.9  # the back-off's second step, not the last Retry-After
        assert m['cems_sink_retries_total{cause="http_429"}'] == 1
        assert m['cems_sink_retries_total{cause="http_503"}'] == 1
        assert not [k for k in m if k.startswith("cems_sink_dead_letters_total{")]
        log = sink.tail(100_000)
        said = "influxdb write of 30 points failed (attempt 1, http_429): throttled by the test; trying again in 2.0s"
        assert said in log
        assert "influxdb write of 30 points failed (attempt 2, http_503)" in log
        stored = reading_points(infra, secrets.influxdb_token(), ns, t0, t0 + timedelta(hours=1))
        assert stored == [(r.stack, r.event_time) for r in good]
        ends = [-1001 if end == 0 else end for end in end_offsets(infra.kafka_bootstrap, topic_set.readings.name, 6)]
        deadline = time.monotonic() + 10
        while committed(infra.kafka_bootstrap, group, topic_set.readings.name, 6) != ends:
            assert time.monotonic() < deadline, sink.tail()
            time.sleep(0.3)
    finally:
        sink.stop()
        relay.close()
