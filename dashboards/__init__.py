"""Grafana provisioning: datasources and dashboards generated from code."""
