//! One update to the webhook: the request, what each answer means, and retries with exponential
//! backoff and jitter until it is accepted, refused for good, or the service stops.

use std::{
    sync::atomic::{AtomicBool, Ordering},
    time::{Duration, Instant},
};

use bluelight_avro::records::VictimUpdate;
use reqwest::StatusCode;
use serde_json::json;

use super::metrics::METRICS;

/// How a delivery ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The webhook accepted it (2xx).
    Delivered,
    /// The webhook refused it for good (4xx other than 408, 425, 429): retrying cannot help.
    Refused { status: u16, reason: String },
    /// The service is stopping; the update is read again on restart.
    Stopped,
}

/// Retry timing: `base`, doubling to `max`, with full jitter so a recovering webhook is not hit by
/// every notifier at once.
#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    pub base: Duration,
    pub max: Duration,
}

impl Backoff {
    pub fn delay(&self, attempt: u32) -> Duration {
        let ceiling = self
            .base
            .saturating_mul(2u32.saturating_pow(attempt.min(20)))
            .min(self.max);
        let jitter = (uuid::Uuid::new_v4().as_u128() % 1_000) as u32;
        ceiling.mul_f64(0.5 + f64::from(jitter) / 2_000.0)
    }
}

/// What the webhook receives: the update's facts for the template, never more than the feed has.
pub fn body(u: &VictimUpdate) -> serde_json::Value {
    let due_by = jiff::Timestamp::from_millisecond(u.due_by.0)
        .map(|t| t.to_string())
        .unwrap_or_default();
    json!({
        "update_id": u.envelope.event_id.to_string(),
        "victim_ref": u.victim_ref,
        "case_id": u.case_id,
        "right": u.right,
        "template_id": u.template_id,
        "parameters": u.parameters,
        "channel": u.channel,
        "due_by": due_by,
    })
}

/// Posts `u` until an answer settles it. The `Idempotency-Key` is the update id, the same on every
/// retry and after a restart, so the receiving service sends the victim one message however often
/// it is asked.
pub async fn deliver(
    client: &reqwest::Client,
    url: &str,
    u: &VictimUpdate,
    backoff: Backoff,
    stop: &AtomicBool,
) -> Outcome {
    let key = u.envelope.event_id.to_string();
    let body = body(u);
    let mut attempt = 0u32;
    loop {
        if stop.load(Ordering::Relaxed) {
            return Outcome::Stopped;
        }
        let sent = client
            .post(url)
            .header("Idempotency-Key", &key)
            .header("Bluelight-Attempt", (attempt + 1).to_string())
            .json(&body)
            .send()
            .await;
        let (why, retry_after) = match sent {
            Ok(r) if r.status().is_success() => {
                METRICS.attempts.with_label_values(&["ok"]).inc();
                return Outcome::Delivered;
            }
            Ok(r) if !retryable(r.status()) => {
                METRICS.attempts.with_label_values(&["refused"]).inc();
                let status = r.status().as_u16();
                let text = r.text().await.unwrap_or_default();
                return Outcome::Refused {
                    status,
                    reason: text.chars().take(500).collect(),
                };
            }
            Ok(r) => {
                let after = r
                    .headers()
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.trim().parse::<u64>().ok())
                    .map(Duration::from_secs);
                (format!("HTTP {}", r.status()), after)
            }
            Err(e) => (e.to_string(), None),
        };
        METRICS.attempts.with_label_values(&["retry"]).inc();
        let wait = retry_after.map_or_else(|| backoff.delay(attempt), |d| d.min(backoff.max));
        tracing::warn!(update_id = %key, attempt = attempt + 1, retry_in_ms = wait.as_millis() as u64, "webhook did not accept the update: {why}");
        let until = Instant::now() + wait;
        while Instant::now() < until && !stop.load(Ordering::Relaxed) {
            tokio::time::sleep(Duration::from_millis(50).min(wait)).await;
        }
        attempt = attempt.saturating_add(1);
    }
}

/// Timeouts, too early, rate limits and server errors pass; other client errors do not.
fn retryable(s: StatusCode) -> bool {
    s.is_server_error() || matches!(s.as_u16(), 408 | 425 | 429)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_its_ceiling_with_jitter_below_it() {
        let b = Backoff {
            base: Duration::from_millis(100),
            max: Duration::from_secs(2),
        };
        for (attempt, ceiling_ms) in [(0, 100), (1, 200), (3, 800), (5, 2_000), (30, 2_000)] {
            for _ in 0..50 {
                let d = b.delay(attempt).as_millis();
                assert!(
                    d >= ceiling_ms / 2 && d <= ceiling_ms,
                    "attempt {attempt}: {d} ms outside {}..={ceiling_ms}",
                    ceiling_ms / 2
                );
            }
        }
    }

    #[test]
    fn only_answers_that_may_change_are_retried() {
        for s in [500, 502, 503, 504, 408, 425, 429] {
            assert!(retryable(StatusCode::from_u16(s).expect("status")), "{s}");
        }
        for s in [400, 401, 403, 404, 409, 410, 422] {
            assert!(!retryable(StatusCode::from_u16(s).expect("status")), "{s}");
        }
    }
}
