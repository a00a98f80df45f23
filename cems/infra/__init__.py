"""Real Mosquitto, Apache Kafka (KRaft) and InfluxDB 2 on loopback, started by the project."""
