"""The per-route HTTP series: plain numbers read by one collector when Prometheus scrapes, with
the names, labels and histogram shape the prometheus_client objects they replace had."""

from __future__ import annotations

import secrets

from prometheus_client import REGISTRY, generate_latest

from service.http.observe import RouteSeries


def sample(name: str, **labels: str) -> float | None:
    return REGISTRY.get_sample_value(name, {**labels, "app_name": "idp"})


def test_counts_latency_buckets_errors_and_in_progress() -> None:
    path = f"/t/{secrets.token_hex(4)}"  # a series no other test touches
    series = RouteSeries()
    first = series.started("GET", path)
    second = series.started("GET", path)
    assert sample("idp_http_requests_in_progress", method="GET", path=path) == 2
    series.finished(first, "GET", path, 200, 0.003)
    series.finished(second, "GET", path, 503, 0.3)
    series.finished(series.started("GET", path), "GET", path, 200, 0.02)
    series.abandoned(series.started("GET", path))  # the client went away: no answer counted
    ok = {"method": "GET", "path": path, "status_code": "200"}
    failed = {"method": "GET", "path": path, "status_code": "503"}
    assert sample("idp_http_requests_in_progress", method="GET", path=path) == 0
    assert sample("idp_http_requests_total", **ok) == 2
    assert sample("idp_http_requests_total", **failed) == 1
    assert sample("idp_http_requests_error_total", **failed) == 1
    assert sample("idp_http_requests_error_total", **ok) is None  # only 5xx
    duration = "idp_http_request_duration_seconds"
    assert sample(f"{duration}_bucket", **ok, le="0.005") == 1  # cumulative buckets
    assert sample(f"{duration}_bucket", **ok, le="0.025") == 2
    assert sample(f"{duration}_bucket", **ok, le="+Inf") == 2
    assert sample(f"{duration}_count", **ok) == 2
    assert abs((sample(f"{duration}_sum", **ok) or 0) - 0.023) < 1e-9
    assert sample(f"{duration}_bucket", **failed, le="0.25") == 0
    assert sample(f"{duration}_bucket", **failed, le="0.5") == 1


def test_the_exposition_is_well_formed() -> None:
    """The text format names each family once, with its type."""
    RouteSeries.finished(RouteSeries.started("POST", "/t/exposition"), "POST", "/t/exposition", 201, 0.01)
    text = generate_latest().decode()
    assert text.count("# TYPE idp_http_requests_total counter") == 1
    assert "# TYPE idp_http_request_duration_seconds histogram" in text
    line = 'idp_http_requests_total{app_name="idp",method="POST",path="/t/exposition",status_code="201"} 1.0'
    assert line in text
