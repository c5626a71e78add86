//! Publish-to-feed latency at a fixed offered load: a paced producer sends events at the given
//! rate (each with a `traceparent` whose trace id names it) while a read_committed consumer on
//! every feed topic notes when each disclosure arrives. The projector carries the trace id from
//! the event to its feed records, so no record needs decoding. Latencies go into an HdrHistogram
//! (1 µs to 60 s, 3 significant figures).

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::Context;
use hdrhistogram::Histogram;
use rdkafka::{
    ClientConfig, Message, Offset, TopicPartitionList,
    consumer::{BaseConsumer, Consumer},
    message::Headers,
    producer::{BaseRecord, DefaultProducerContext, ThreadedProducer},
};

use super::{passthrough::traceparent, workload::Prepared};

#[derive(Debug)]
pub struct Latency {
    pub histogram: Histogram<u64>,
    pub sent: u64,
    /// Disclosures expected (a third of the events' output records) and seen.
    pub expected: u64,
    pub seen: u64,
    /// The rate the producer achieved.
    pub offered_per_s: f64,
}

impl Latency {
    pub fn ms(&self, quantile: f64) -> f64 {
        self.histogram.value_at_quantile(quantile) as f64 / 1000.0
    }
}

/// Sends `events` at `rate` per second for `duration`, each once (their ids must be new to the
/// projector: it suppresses an event id a feed already has), and measures until every
/// disclosure arrived or 15 s after the last send.
pub fn measure(
    base: &ClientConfig,
    feeds: &[String],
    events: Vec<Prepared>,
    rate: f64,
    duration: Duration,
) -> anyhow::Result<Latency> {
    let total = (rate * duration.as_secs_f64()) as u64;
    anyhow::ensure!(
        events.len() as u64 >= total,
        "{} events prepared for a latency run of {total}",
        events.len()
    );
    let consumer = feed_consumer(base, feeds)?;
    let sent_at: Arc<Vec<AtomicU64>> = Arc::new((0..total).map(|_| AtomicU64::new(0)).collect());
    let epoch = Instant::now();
    let mut expected = 0u64;
    for i in 0..total {
        expected += u64::from(events[i as usize].outputs / 3);
    }

    let producer: ThreadedProducer<DefaultProducerContext> = base
        .clone()
        // As ingest sends: a few milliseconds' linger, so 5,000 events a second are not 5,000
        // produce requests competing with the service for the same two cores.
        .set("linger.ms", "5")
        .set("enable.idempotence", "true")
        .set("compression.type", "lz4")
        .create()?;
    let sender = {
        let sent_at = sent_at.clone();
        std::thread::spawn(move || -> anyhow::Result<f64> {
            let start = Instant::now();
            for i in 0..total {
                let due = start + Duration::from_secs_f64(i as f64 / rate);
                if let Some(wait) = due.checked_duration_since(Instant::now()) {
                    std::thread::sleep(wait);
                }
                let e = &events[i as usize];
                let tp = traceparent(i, e.outputs);
                let mut record = BaseRecord::to(e.topic)
                    .key(e.key.as_bytes())
                    .payload(e.payload.as_slice())
                    .headers(rdkafka::message::OwnedHeaders::new().insert(
                        rdkafka::message::Header {
                            key: "traceparent",
                            value: Some(tp.as_bytes()),
                        },
                    ));
                sent_at[i as usize].store(epoch.elapsed().as_micros() as u64, Ordering::Relaxed);
                loop {
                    match producer.send(record) {
                        Ok(()) => break,
                        Err((_, back)) => {
                            record = back;
                            std::thread::sleep(Duration::from_millis(1));
                        }
                    }
                }
            }
            let secs = start.elapsed().as_secs_f64();
            rdkafka::producer::Producer::flush(&producer, Duration::from_secs(30))?;
            Ok(total as f64 / secs)
        })
    };

    let mut histogram = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
    let mut seen = 0u64;
    let mut done_sending: Option<Instant> = None;
    let mut offered = 0.0;
    loop {
        if done_sending.is_none() && sender.is_finished() {
            done_sending = Some(Instant::now());
        }
        if seen >= expected || done_sending.is_some_and(|t| t.elapsed() > Duration::from_secs(15)) {
            break;
        }
        let Some(m) = consumer.poll(Duration::from_millis(50)) else {
            continue;
        };
        let m = m?;
        let now = epoch.elapsed().as_micros() as u64;
        let Some(seq) = m.headers().and_then(|h| {
            h.iter()
                .find(|h| h.key == "traceparent")
                .and_then(|h| h.value)
                .and_then(|v| std::str::from_utf8(v).ok())
                .and_then(|t| t.split('-').nth(1))
                .and_then(|id| u128::from_str_radix(id, 16).ok())
        }) else {
            continue;
        };
        let Some(at) = usize::try_from(seq)
            .ok()
            .and_then(|s| s.checked_sub(1))
            .and_then(|s| sent_at.get(s))
        else {
            continue;
        };
        let at = at.load(Ordering::Relaxed);
        if at > 0 {
            histogram.saturating_record(now.saturating_sub(at).max(1));
            seen += 1;
        }
    }
    if let Ok(r) = sender.join() {
        offered = r.context("the paced producer")?;
    }
    Ok(Latency {
        histogram,
        sent: total,
        expected,
        seen,
        offered_per_s: offered,
    })
}

/// A read_committed consumer on every partition of `feeds`, from their current ends.
fn feed_consumer(base: &ClientConfig, feeds: &[String]) -> anyhow::Result<BaseConsumer> {
    let consumer: BaseConsumer = base
        .clone()
        .set(
            "group.id",
            format!("bench-latency-{}", uuid::Uuid::new_v4()),
        )
        .set("enable.auto.commit", "false")
        .set("isolation.level", "read_committed")
        .set("fetch.wait.max.ms", "10")
        .create()?;
    let mut tpl = TopicPartitionList::new();
    for topic in feeds {
        let md = consumer.fetch_metadata(Some(topic), Duration::from_secs(10))?;
        for t in md.topics() {
            for p in t.partitions() {
                let (_, high) =
                    consumer.fetch_watermarks(topic, p.id(), Duration::from_secs(10))?;
                tpl.add_partition_offset(topic, p.id(), Offset::Offset(high))?;
            }
        }
    }
    consumer.assign(&tpl)?;
    Ok(consumer)
}
