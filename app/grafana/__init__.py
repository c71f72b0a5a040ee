"""Grafana's JSON datasource (simpod-json-datasource ≥ 0.6) over the rollups, reports and SLOs."""
