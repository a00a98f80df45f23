"""`cems alerts list|tail` and `cems run`'s alert lines read the real alerts topic: committed
events only, folded to each alert's current state."""

from __future__ import annotations

from confluent_kafka import Producer
from typer.testing import CliRunner

from cems.alert_view import AlertReader
from cems.cli import app
from cems.infra.settings import InfraSettings
from cems.topics import ensure_topics
from contracts.alerts import AlertEvent, AlertEventType
from contracts.topics import topics
from tests.unit.test_alert_view import EVENTS, event


def _produce(bootstrap: str, topic: str, events: list[AlertEvent], *, commit: bool, txn: str) -> None:
    producer = Producer({"bootstrap.servers": bootstrap, "transactional.id": txn})
    producer.init_transactions(30)
    producer.begin_transaction()
    for e in events:
        producer.produce(topic, key=e.stack.encode(), value=e.model_dump_json().encode())
    producer.flush(30)
    if commit:
        producer.commit_transaction(30)
    else:
        producer.abort_transaction(30)


def test_list_and_tail_show_committed_alerts_only(infra: InfraSettings, unique: str) -> None:
    topic_set = topics(f"a{unique}")
    ensure_topics(infra.kafka_bootstrap, topic_set.all())
    topic = topic_set.alerts.name
    tail = AlertReader(infra.kafka_bootstrap, topic, from_beginning=False, group=f"t-{unique}")
    try:
        _produce(infra.kafka_bootstrap, topic, EVENTS, commit=True, txn=f"ok-{unique}")
        aborted = event("bypass", "jy-coke-1-s1", AlertEventType.OPENED, 10, "never")
        _produce(infra.kafka_bootstrap, topic, [aborted], commit=False, txn=f"no-{unique}")
        seen: list[str] = []
        for _ in range(40):
            seen += [e.alert_id for e in tail.poll(timeout_s=0.5)]
            if len(seen) >= len(EVENTS):
                break
        assert sorted(seen) == sorted(e.alert_id for e in EVENTS)  # the aborted one never shows
    finally:
        tail.close()
    runner = CliRunner()
    result = runner.invoke(app, ["alerts", "list", "--namespace", f"a{unique}"], env={"COLUMNS": "250"})
    assert result.exit_code == 0, result.output
    assert "2 alerts in" in result.output and "never" not in result.output
    assert "jy-power-1-s1" in result.output and "jy-cement-2-s1" in result.output
    result = runner.invoke(app, ["alerts", "list", "--open", "--namespace", f"a{unique}"], env={"COLUMNS": "250"})
    assert "1 alerts in" in result.output and "jy-cement-2-s1" not in result.output
