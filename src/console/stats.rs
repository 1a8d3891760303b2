//! The last hour from the gateway's own counters: `mcp_requests_total` by outcome and the
//! `mcp_request_duration_seconds` histogram, sampled every 15 s and kept for an hour, so the
//! overview shows differences over the window (requests, errors, refusals, p99) without a
//! Prometheus server.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub const EVERY: Duration = Duration::from_secs(15);
const WINDOW: Duration = Duration::from_secs(3600);

/// The counters at one moment.
#[derive(Clone, Default)]
struct Sample {
    at: Option<Instant>,
    by_outcome: BTreeMap<String, f64>,
    /// The latency histogram summed over scopes: (upper bound, cumulative count).
    buckets: Vec<(f64, f64)>,
}

#[derive(Default)]
pub struct Stats {
    samples: Mutex<VecDeque<Sample>>,
}

/// What the overview shows.
#[derive(serde::Serialize)]
pub struct Summary {
    pub minutes: u64,
    pub requests: u64,
    /// The gateway or the upstream failed: upstream errors, timeouts, unavailable, internal.
    pub errors: u64,
    /// Refused by the gateway: unauthenticated, denied, rate limited, invalid.
    pub refused: u64,
    /// The tool or the upstream answered with an error of its own.
    pub tool_errors: u64,
    pub p99_ms: Option<f64>,
    pub by_outcome: Vec<(String, u64)>,
}

fn now() -> Sample {
    let mut s = Sample {
        at: Some(Instant::now()),
        ..Default::default()
    };
    let mut buckets: BTreeMap<u64, (f64, f64)> = BTreeMap::new();
    for family in prometheus::gather() {
        match family.name() {
            "mcp_requests_total" => {
                for m in family.get_metric() {
                    let outcome = (m.get_label().iter())
                        .find(|l| l.name() == "outcome")
                        .map_or("", |l| l.value());
                    *s.by_outcome.entry(outcome.to_string()).or_default() +=
                        m.get_counter().value();
                }
            }
            "mcp_request_duration_seconds" => {
                for m in family.get_metric() {
                    for b in m.get_histogram().get_bucket() {
                        let e = buckets.entry(b.upper_bound().to_bits()).or_default();
                        e.0 = b.upper_bound();
                        e.1 += b.cumulative_count() as f64;
                    }
                }
            }
            _ => {}
        }
    }
    let mut v: Vec<(f64, f64)> = buckets.into_values().collect();
    v.sort_by(|a, b| a.0.total_cmp(&b.0));
    s.buckets = v;
    s
}

impl Stats {
    /// Takes a sample; drops those older than the window (one is kept as its start).
    pub fn sample(&self) {
        let s = now();
        let mut samples = self.samples.lock().unwrap_or_else(|p| p.into_inner());
        samples.push_back(s);
        while samples.len() > 2 && samples[1].at.is_some_and(|t| t.elapsed() >= WINDOW) {
            samples.pop_front();
        }
    }

    /// The window: since the oldest sample an hour back, or since the process started (the
    /// counters start at zero) when it is younger than that.
    pub fn summary(&self, uptime: Duration) -> Summary {
        let current = now();
        let start = {
            let samples = self.samples.lock().unwrap_or_else(|p| p.into_inner());
            samples
                .front()
                .filter(|s| s.at.is_some_and(|t| t.elapsed() >= WINDOW - EVERY))
                .cloned()
                .unwrap_or_default()
        };
        let minutes = start
            .at
            .map_or(uptime, |t| t.elapsed())
            .as_secs()
            .div_ceil(60);
        let delta = |o: &str| {
            (current.by_outcome.get(o).copied().unwrap_or(0.0)
                - start.by_outcome.get(o).copied().unwrap_or(0.0))
            .max(0.0) as u64
        };
        let by_outcome: Vec<(String, u64)> = (current.by_outcome.keys())
            .map(|o| (o.clone(), delta(o)))
            .filter(|(_, n)| *n > 0)
            .collect();
        let sum = |names: &[&str]| names.iter().map(|o| delta(o)).sum::<u64>();
        Summary {
            minutes,
            requests: by_outcome.iter().map(|(_, n)| n).sum(),
            errors: sum(&["upstream_error", "timeout", "unavailable", "internal"]),
            refused: sum(&[
                "unauthenticated",
                "denied",
                "rate_limited",
                "invalid",
                "invalid_arguments",
                "sign_in_required",
            ]),
            tool_errors: sum(&["tool_error", "rpc_error"]),
            p99_ms: p99(&start.buckets, &current.buckets),
            by_outcome,
        }
    }
}

/// The 99th percentile of the requests between two histogram samples, interpolated within its
/// bucket; `None` without requests.
fn p99(start: &[(f64, f64)], end: &[(f64, f64)]) -> Option<f64> {
    let before = |bound: f64| {
        (start.iter())
            .find(|(b, _)| *b == bound)
            .map_or(0.0, |(_, n)| *n)
    };
    let counts: Vec<(f64, f64)> = end.iter().map(|(b, n)| (*b, n - before(*b))).collect();
    let total = counts.last().map(|(_, n)| *n)?;
    if total <= 0.0 {
        return None;
    }
    let rank = total * 0.99;
    let mut lower = (0.0, 0.0);
    for (bound, n) in &counts {
        if *n >= rank {
            let share = if n - lower.1 > 0.0 {
                (rank - lower.1) / (n - lower.1)
            } else {
                1.0
            };
            return Some((lower.0 + (bound - lower.0) * share) * 1000.0);
        }
        lower = (*bound, *n);
    }
    // Past the last bound: at least that.
    Some(lower.0 * 1000.0)
}

#[cfg(test)]
mod tests {
    #[test]
    fn p99_is_read_from_the_bucket_that_holds_it() {
        let start = [(0.01, 0.0), (0.1, 0.0), (1.0, 0.0)];
        let end = [(0.01, 90.0), (0.1, 99.0), (1.0, 100.0)];
        // The 99th of 100 requests is the last of the second bucket.
        assert_eq!(super::p99(&start, &end), Some(100.0));
        let end = [(0.01, 100.0), (0.1, 100.0), (1.0, 100.0)];
        assert!(super::p99(&start, &end).unwrap() <= 10.0);
        assert_eq!(super::p99(&end, &end), None);
    }
}
