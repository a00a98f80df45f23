"""InfluxDB 2 (v2 API): write with influxdb-client, read back with a Flux query."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from influxdb_client import InfluxDBClient, Point, WritePrecision
from influxdb_client.client.write_api import SYNCHRONOUS

from cems.infra.secrets import SecretStore
from cems.infra.settings import InfraSettings

pytestmark = pytest.mark.integration


def test_write_points_and_query_them_back(infra: InfraSettings, secrets: SecretStore, unique: str) -> None:
    start = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)
    values = [31.5, 36.25, 40.0]
    with InfluxDBClient(url=infra.influxdb_url, token=secrets.influxdb_token(), org=infra.influxdb_org) as client:
        assert client.ping()
        points = [
            Point("smoke_reading")
            .tag("stack", f"stack-{unique}")
            .field("so2_mg_m3", v)
            .time(start + timedelta(minutes=i), WritePrecision.S)
            for i, v in enumerate(values)
        ]
        client.write_api(write_options=SYNCHRONOUS).write(bucket=infra.influxdb_bucket, record=points)
        query = f'''
            from(bucket: "{infra.influxdb_bucket}")
              |> range(start: 2026-01-05T00:00:00Z, stop: 2026-01-06T00:00:00Z)
              |> filter(fn: (r) => r._measurement == "smoke_reading" and r.stack == "stack-{unique}")
              |> filter(fn: (r) => r._field == "so2_mg_m3")
        '''
        tables = client.query_api().query(query)
        rows = [(r.get_time(), r.get_value()) for t in tables for r in t.records]
        assert rows == [(start + timedelta(minutes=i), v) for i, v in enumerate(values)]
        mean = client.query_api().query(query + "  |> mean()")
        assert mean[0].records[0].get_value() == pytest.approx(sum(values) / 3)


def test_wrong_token_is_refused(infra: InfraSettings) -> None:
    from influxdb_client.rest import ApiException

    with InfluxDBClient(url=infra.influxdb_url, token="wrong-token", org=infra.influxdb_org) as client:
        with pytest.raises(ApiException) as info:
            client.query_api().query(f'from(bucket: "{infra.influxdb_bucket}") |> range(start: -1m)')
        assert info.value.status == 401
