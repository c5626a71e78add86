//! Helpers for tests that talk to the real broker started by `deploy/local/test`.
//!
//! Tests never skip when the broker is missing: [`brokers`] panics with instructions instead, so a
//! green run always means the broker was there.

use std::{
    sync::atomic::{AtomicU64, Ordering},
    time::{SystemTime, UNIX_EPOCH},
};

use crate::KafkaArgs;

/// The environment variable `deploy/local/test` sets to the throwaway broker's address.
pub const BROKERS_ENV: &str = "BLUELIGHT_TEST_BROKERS";

/// The test broker's bootstrap address; panics with a clear message when there is none.
pub fn brokers() -> String {
    match std::env::var(BROKERS_ENV) {
        Ok(b) if !b.trim().is_empty() => b,
        _ => panic!(
            "{BROKERS_ENV} is not set: this test needs a real Apache Kafka broker. \
             Run the suite with deploy/local/test, which starts one (or set {BROKERS_ENV}=host:port)."
        ),
    }
}

/// Kafka settings for the test broker.
pub fn kafka() -> KafkaArgs {
    KafkaArgs::for_brokers(brokers())
}

/// A name no other test (or earlier run) uses, made of lower-case letters and digits.
pub fn unique(prefix: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!(
        "{prefix}{:x}{:x}{}",
        nanos & 0xffff_ffff_ffff,
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}
