#!/usr/bin/env python3
"""Writes dashboards/*.json: the bluelight Grafana dashboards, generated so every panel follows one
shape. Run it after changing a panel: python3 deploy/grafana/generate.py"""
import json, pathlib

DS = {"type": "prometheus", "uid": "bluelight-prometheus"}
HERE = pathlib.Path(__file__).parent


def panel(pid, title, exprs, x, y, w=12, h=8, unit="short", kind="timeseries", desc=""):
    return {
        "id": pid, "type": kind, "title": title, "description": desc, "datasource": DS,
        "gridPos": {"x": x, "y": y, "w": w, "h": h},
        "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
        "options": {"legend": {"displayMode": "list", "placement": "bottom"}},
        "targets": [
            {"refId": chr(65 + i), "datasource": DS, "expr": e, "legendFormat": l}
            for i, (e, l) in enumerate(exprs)
        ],
    }


def dashboard(uid, title, panels):
    return {
        "uid": uid, "title": title, "tags": ["bluelight"], "timezone": "utc",
        "schemaVersion": 39, "version": 1, "refresh": "10s",
        "time": {"from": "now-1h", "to": "now"}, "panels": panels,
        "templating": {"list": []}, "annotations": {"list": []},
    }


overview = dashboard("bluelight-overview", "bluelight: backbone overview", [
    panel(1, "Services up", [('up{job=~"bluelight-.*"}', "{{job}}")], 0, 0, 24, 4, kind="stat"),
    panel(2, "Events in (per second)", [
        ("sum(rate(bluelight_ingest_records_accepted_total[1m]))", "ingest accepted"),
        ("sum(rate(bluelight_ingest_records_rejected_total[1m]))", "ingest rejected"),
        ("sum(rate(bluelight_projector_events_consumed_total[1m]))", "projector consumed"),
    ], 0, 4, unit="ops"),
    panel(3, "Records out (per second)", [
        ("sum(rate(bluelight_projector_disclosures_total[1m]))", "disclosures"),
        ("sum(rate(bluelight_projector_retractions_sent_total[1m]))", "retractions"),
        ("sum(rate(bluelight_victim_updates_written_total[1m]))", "victim updates"),
        ("sum(rate(bluelight_gateway_events_sent_total[1m]))", "gateway stream events"),
    ], 12, 4, unit="ops"),
    panel(4, "Consumer lag (records)", [
        ("sum by (topic) (bluelight_projector_consumer_lag)", "projector {{topic}}"),
        ("sum by (topic) (bluelight_victim_updates_consumer_lag)", "victim updates {{topic}}"),
        ("sum by (topic) (bluelight_victim_deadlines_consumer_lag)", "deadlines {{topic}}"),
    ], 0, 12),
    panel(5, "Disclosures per agreement (per second)", [
        ("sum by (agreement) (rate(bluelight_projector_disclosures_total[5m]))", "{{agreement}}"),
    ], 12, 12, unit="ops"),
    panel(6, "Dead letters (last hour)", [
        ("sum(increase(bluelight_ingest_dead_letters_total[1h]))", "ingest"),
        ("sum by (reason) (increase(bluelight_projector_dead_letters_total[1h]))", "projector {{reason}}"),
        ("sum(increase(bluelight_victim_updates_dead_letters_total[1h]))", "victim updates"),
        ("sum(increase(bluelight_notify_dead_letters_total[1h]))", "notify"),
    ], 0, 20),
    panel(7, "Victims' Code updates undelivered", [
        ("sum by (right) (bluelight_victim_updates_due)", "due soon: {{right}}"),
        ("sum by (right) (bluelight_victim_updates_overdue)", "overdue: {{right}}"),
    ], 12, 20),
    panel(8, "Source to feed latency", [
        ("histogram_quantile(0.5, sum by (le) (rate(bluelight_projector_end_to_end_seconds_bucket[5m])))", "p50"),
        ("histogram_quantile(0.99, sum by (le) (rate(bluelight_projector_end_to_end_seconds_bucket[5m])))", "p99"),
        ("histogram_quantile(0.99, sum by (le) (rate(bluelight_gateway_feed_latency_seconds_bucket[5m])))", "feed to stream p99"),
    ], 0, 28, unit="s"),
    panel(9, "Projector transactions", [
        ("histogram_quantile(0.99, sum by (le) (rate(bluelight_projector_transaction_commit_seconds_bucket[5m])))", "commit p99"),
        ("sum by (reason) (rate(bluelight_projector_transaction_aborts_total[5m]))", "aborts {{reason}}"),
        ("max(bluelight_projector_paused)", "paused (producer queue full)"),
    ], 12, 28),
    panel(10, "Gateway", [
        ("sum(bluelight_gateway_streams_open)", "streams open"),
        ("sum by (reason) (rate(bluelight_gateway_streams_closed_total[5m]))", "closed: {{reason}}"),
        ("sum by (reason) (rate(bluelight_gateway_requests_refused_total[5m]))", "refused: {{reason}}"),
        ("sum by (action) (rate(bluelight_gateway_consultations_total[5m]))", "consultations: {{action}}"),
    ], 0, 36),
    panel(11, "Ingest", [
        ("sum(bluelight_ingest_records_in_flight)", "records in flight"),
        ("sum by (reason) (rate(bluelight_ingest_requests_refused_total[5m]))", "refused: {{reason}}"),
        ("histogram_quantile(0.99, sum by (le) (rate(bluelight_ingest_publish_seconds_bucket[5m])))", "publish p99 (s)"),
    ], 12, 36),
])

for name, d in {"bluelight-overview.json": overview}.items():
    (HERE / "dashboards" / name).write_text(json.dumps(d, indent=2) + "\n")
