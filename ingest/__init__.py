"""Ingest gateway: MQTT and HJ 212 in, validated readings to Kafka, refusals to dead letters."""
