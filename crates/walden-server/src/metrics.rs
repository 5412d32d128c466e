//! Prometheus metrics in the text exposition format (version 0.0.4), written by hand: the
//! request latency histogram per route, and the log's own counters and histograms
//! (walden-log `StatsSnapshot`) read at scrape time.

use crate::connections::{Endpoint, REFUSING_MAX};
use crate::state::AppState;
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use hdrhistogram::Histogram;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;

/// Upper bounds of the request latency buckets, in seconds.
const REQUEST_BUCKETS_SECONDS: [f64; 16] = [
    0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
];

/// Upper bounds of the fsync latency buckets, in microseconds.
const FSYNC_BUCKETS_MICROS: [u64; 15] = [
    25, 50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000,
    1_000_000,
];

/// Upper bounds of the records-per-group-commit buckets.
const GROUP_BUCKETS: [u64; 11] = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024];

#[derive(Debug, Default, Clone)]
struct RequestHistogram {
    buckets: [u64; REQUEST_BUCKETS_SECONDS.len()],
    count: u64,
    sum_seconds: f64,
}

/// Request metrics, keyed by (route template, method, status): all three from closed sets,
/// so garbage requests cannot grow the map, and recording allocates nothing.
#[derive(Debug, Default)]
pub struct Metrics {
    requests: Mutex<BTreeMap<(&'static str, &'static str, u16), RequestHistogram>>,
}

/// Methods are a closed set in labels, so garbage methods cannot grow the map.
pub(crate) fn method_label(m: &axum::http::Method) -> &'static str {
    match m.as_str() {
        "GET" => "GET",
        "PUT" => "PUT",
        "POST" => "POST",
        "DELETE" => "DELETE",
        "HEAD" => "HEAD",
        _ => "OTHER",
    }
}

impl Metrics {
    /// Request counts per (route, method, status), for tests.
    #[cfg(test)]
    pub(crate) fn counts(&self) -> BTreeMap<(&'static str, &'static str, u16), u64> {
        let map = self.requests.lock().unwrap_or_else(|e| e.into_inner());
        map.iter().map(|(k, h)| (*k, h.count)).collect()
    }

    /// Counts one request to `route` (a template of [`crate::ROUTES`]).
    pub(crate) fn record(
        &self,
        route: &'static str,
        method: &'static str,
        status: u16,
        seconds: f64,
    ) {
        self.record_many(route, method, &[(status, seconds)]);
    }

    /// Counts several requests to `route` with one lock: (status, seconds) each.
    pub(crate) fn record_many(
        &self,
        route: &'static str,
        method: &'static str,
        requests: &[(u16, f64)],
    ) {
        let mut map = self.requests.lock().unwrap_or_else(|e| e.into_inner());
        for &(status, seconds) in requests {
            let h = map.entry((route, method, status)).or_default();
            h.count += 1;
            h.sum_seconds += seconds;
            for (i, bound) in REQUEST_BUCKETS_SECONDS.iter().enumerate() {
                if seconds <= *bound {
                    if let Some(b) = h.buckets.get_mut(i) {
                        *b += 1;
                    }
                }
            }
        }
    }
}

fn escape_label(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn hdr_histogram(
    out: &mut String,
    name: &str,
    help: &str,
    h: &Histogram<u64>,
    bounds: &[u64],
    scale: f64,
) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} histogram");
    for b in bounds {
        let count = if h.is_empty() {
            0
        } else {
            h.count_between(0, *b)
        };
        let _ = writeln!(out, "{name}_bucket{{le=\"{}\"}} {count}", *b as f64 * scale);
    }
    let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {}", h.len());
    let sum: f64 = h
        .iter_recorded()
        .map(|v| v.value_iterated_to() as f64 * v.count_at_value() as f64)
        .sum();
    let _ = writeln!(out, "{name}_sum {}", sum * scale);
    let _ = writeln!(out, "{name}_count {}", h.len());
}

fn gauge(out: &mut String, name: &str, kind: &str, help: &str, value: impl std::fmt::Display) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
    let _ = writeln!(out, "{name} {value}");
}

/// One metric with one label, a sample per label value.
fn labelled<const N: usize>(
    out: &mut String,
    name: &str,
    kind: &str,
    help: &str,
    label: &str,
    samples: [(&str, u64); N],
) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
    for (value, sample) in samples {
        let _ = writeln!(out, "{name}{{{label}=\"{value}\"}} {sample}");
    }
}

/// Renders every metric.
pub fn render(state: &AppState, log_size_bytes: u64) -> String {
    let mut out = String::with_capacity(8192);
    let name = "walden_http_request_duration_seconds";
    let _ = writeln!(
        out,
        "# HELP {name} Time from request to response head, by route template, method and status."
    );
    let _ = writeln!(out, "# TYPE {name} histogram");
    {
        let map = state
            .0
            .metrics
            .requests
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        for ((route, method, status), h) in map.iter() {
            let labels = format!(
                "route=\"{}\",method=\"{method}\",status=\"{status}\"",
                escape_label(route)
            );
            for (bound, count) in REQUEST_BUCKETS_SECONDS.iter().zip(h.buckets.iter()) {
                let _ = writeln!(out, "{name}_bucket{{{labels},le=\"{bound}\"}} {count}");
            }
            let _ = writeln!(out, "{name}_bucket{{{labels},le=\"+Inf\"}} {}", h.count);
            let _ = writeln!(out, "{name}_sum{{{labels}}} {}", h.sum_seconds);
            let _ = writeln!(out, "{name}_count{{{labels}}} {}", h.count);
        }
    }
    let store = &state.0.store;
    let stats = store.wal().stats();
    hdr_histogram(
        &mut out,
        "walden_log_fsync_duration_seconds",
        "Latency of each fdatasync of a log segment.",
        &stats.fsync_latency_micros,
        &FSYNC_BUCKETS_MICROS,
        1e-6,
    );
    hdr_histogram(
        &mut out,
        "walden_log_records_per_group_commit",
        "Records made durable by each group commit (one fdatasync shared by concurrent writers).",
        &stats.records_per_group_commit,
        &GROUP_BUCKETS,
        1.0,
    );
    let counters: [(&str, &str, u64); 7] = [
        (
            "walden_log_bytes_written_total",
            "Record payload bytes appended to the log since start.",
            stats.bytes_appended,
        ),
        (
            "walden_log_records_appended_total",
            "Records appended to the log since start.",
            stats.records_appended,
        ),
        (
            "walden_log_fsyncs_total",
            "fdatasync calls on log segments since start.",
            stats.fsyncs,
        ),
        (
            "walden_log_group_commits_total",
            "Group commits since start.",
            stats.group_commits,
        ),
        (
            "walden_log_rotations_total",
            "Segment rotations since start.",
            stats.rotations,
        ),
        (
            "walden_log_segments_created_total",
            "Segment files created since start.",
            stats.segments_created,
        ),
        (
            "walden_log_segments_released_total",
            "Segments released by checkpoints since start.",
            stats.segments_released,
        ),
    ];
    for (n, help, v) in counters {
        gauge(&mut out, n, "counter", help, v);
    }
    let status = store.status();
    gauge(
        &mut out,
        "walden_log_size_bytes",
        "gauge",
        "Bytes of the live log segment files.",
        log_size_bytes,
    );
    gauge(
        &mut out,
        "walden_log_segments",
        "gauge",
        "Live log segments.",
        status.log_segments,
    );
    let _ = writeln!(
        out,
        "# HELP walden_lsn Log positions: appended, durable, visible, checkpoint, first."
    );
    let _ = writeln!(out, "# TYPE walden_lsn gauge");
    for (kind, v) in [
        ("appended", status.appended_lsn.get()),
        ("durable", status.durable_lsn.get()),
        ("visible", status.visible_lsn.get()),
        ("checkpoint", status.checkpoint_lsn.get()),
        ("first", status.log_first_lsn.get()),
    ] {
        let _ = writeln!(out, "walden_lsn{{kind=\"{kind}\"}} {v}");
    }
    gauge(
        &mut out,
        "walden_keys",
        "gauge",
        "Keys in the visible state, tombstones included.",
        status.keys,
    );
    let (subs, max_lag, sum_lag) = state.0.subscribers.lag(status.durable_lsn.get());
    gauge(
        &mut out,
        "walden_subscribers",
        "gauge",
        "Open change streams.",
        subs,
    );
    gauge(
        &mut out,
        "walden_subscriber_lag_max_lsns",
        "gauge",
        "Largest distance, in LSNs, between the durable end of the log and a change stream's position.",
        max_lag,
    );
    gauge(
        &mut out,
        "walden_subscriber_lag_sum_lsns",
        "gauge",
        "Sum over change streams of their distance to the durable end of the log.",
        sum_lag,
    );
    let connections = &state.0.connections;
    gauge(
        &mut out,
        "walden_resp_connections",
        "gauge",
        "Connections the RESP endpoint serves (admitted under --max-connections), TLS handshakes included.",
        connections.open_on(Endpoint::Resp),
    );
    gauge(
        &mut out,
        "walden_http_connections",
        "gauge",
        "Connections the HTTP endpoint serves (admitted under --max-connections), TLS handshakes included.",
        connections.open_on(Endpoint::Http),
    );
    gauge(
        &mut out,
        "walden_connections_max",
        "gauge",
        "Most connections served at once, both endpoints together: --max-connections, or fewer when the open-file limit is too low for it.",
        connections.max(),
    );
    labelled(
        &mut out,
        "walden_connections_refused_total",
        "counter",
        &format!(
            "Connections refused past --max-connections: told the server is full and closed, or, past {REFUSING_MAX} refusals at once, closed at once."
        ),
        "endpoint",
        Endpoint::ALL.map(|e| (e.label(), connections.refused_on(e))),
    );
    gauge(
        &mut out,
        "walden_uptime_seconds",
        "gauge",
        "Seconds since the server started serving.",
        state.0.started.elapsed().as_secs_f64(),
    );
    out
}

/// The `/metrics` response headers and body.
pub fn response(body: String) -> Response {
    let mut r = body.into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    r
}
