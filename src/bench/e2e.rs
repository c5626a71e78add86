//! `bluelight bench e2e`: preload, then each run in turn on the same broker and the same bytes.
//!
//! 1. Preload N events of the simulator's mix onto the canonical topics (timing the in-memory
//!    projection of each as it goes).
//! 2. Throughput: the passthrough, the projector exactly-once and the projector at-least-once,
//!    each a new process in its own consumer group reading the whole backlog from the start.
//!    Measured from its first commit to the commit that reaches the end of the topics, so
//!    start-up (connecting, reading `state.disclosures.v1` back) is not counted.
//! 3. Latency: with each projector caught up and still running, events at a fixed rate.

use std::{
    collections::BTreeMap,
    time::{Duration, Instant},
};

use anyhow::Context;
use rdkafka::{
    ClientConfig, Offset, TopicPartitionList,
    consumer::{BaseConsumer, Consumer},
    producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer},
};

use super::{
    child::Service,
    passthrough::{CANONICAL, OUTPUT_TOPICS, output_topic, traceparent},
    workload::{Prepared, Workload},
};

/// One throughput run.
#[derive(Debug, Clone, Default)]
pub struct Run {
    pub name: &'static str,
    pub events: u64,
    pub seconds: f64,
    pub events_per_s: f64,
    pub records_out_per_s: f64,
    pub cpu_s_per_million: f64,
    pub peak_rss_mib: f64,
}

/// Preloads `n` events.
pub fn preload(base: &ClientConfig, workload: &mut Workload<'_>, n: u64) -> anyhow::Result<()> {
    let producer: ThreadedProducer<DefaultProducerContext> = base
        .clone()
        .set("enable.idempotence", "true")
        .set("linger.ms", "20")
        .set("batch.size", "1000000")
        .set("compression.type", "lz4")
        .set("queue.buffering.max.messages", "200000")
        .create()?;
    let started = Instant::now();
    for i in 0..n {
        let e = workload.next_event()?;
        let tp = traceparent(u64::MAX - 1 - i, e.outputs);
        let mut record = BaseRecord::to(e.topic)
            .key(e.key.as_bytes())
            .payload(e.payload.as_slice())
            .headers(
                rdkafka::message::OwnedHeaders::new().insert(rdkafka::message::Header {
                    key: "traceparent",
                    value: Some(tp.as_bytes()),
                }),
            );
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((_, back)) => {
                    record = back;
                    producer.poll(Duration::from_millis(5));
                }
            }
        }
        if (i + 1) % 100_000 == 0 {
            tracing::info!(
                events = i + 1,
                seconds = started.elapsed().as_secs(),
                "preloading"
            );
        }
    }
    producer.flush(Duration::from_secs(120))?;
    Ok(())
}

/// Events for one latency run, drawn from the workload after the backlog: new event ids, as a
/// projector suppresses an event id a feed has already received (a source's retry), so sending
/// backlog events again would measure nothing.
pub fn fresh(workload: &mut Workload<'_>, n: u64) -> anyhow::Result<Vec<Prepared>> {
    (0..n).map(|_| workload.next_event()).collect()
}

/// The end offset of every canonical partition now.
pub fn ends(base: &ClientConfig) -> anyhow::Result<BTreeMap<(String, i32), i64>> {
    let c: BaseConsumer = base.clone().create()?;
    let mut out = BTreeMap::new();
    for topic in CANONICAL {
        let md = c.fetch_metadata(Some(topic), Duration::from_secs(10))?;
        for t in md.topics() {
            anyhow::ensure!(
                !t.partitions().is_empty(),
                "topic {topic} does not exist; run `bluelight topics apply` first"
            );
            for p in t.partitions() {
                let (_, high) = c.fetch_watermarks(topic, p.id(), Duration::from_secs(10))?;
                out.insert((topic.to_owned(), p.id()), high);
            }
        }
    }
    Ok(out)
}

/// Events a group has committed past, out of `total` (ends are offsets, and transaction markers
/// take offsets too, so progress is read as a share of the offset range).
fn committed(
    reader: &BaseConsumer,
    ends: &BTreeMap<(String, i32), i64>,
) -> anyhow::Result<(i64, i64)> {
    let mut tpl = TopicPartitionList::new();
    for (topic, p) in ends.keys() {
        tpl.add_partition(topic, *p);
    }
    let got = reader.committed_offsets(tpl, Duration::from_secs(10))?;
    let mut done = 0;
    let mut total = 0;
    for ((topic, p), end) in ends {
        total += end;
        if let Some(e) = got.find_partition(topic, *p)
            && let Offset::Offset(o) = e.offset()
        {
            done += o.min(*end);
        }
    }
    Ok((done, total))
}

/// Waits for `service` (consumer group `group`) to commit up to `ends`, measuring it.
#[allow(clippy::too_many_arguments)]
pub fn throughput(
    name: &'static str,
    service: &mut Service,
    base: &ClientConfig,
    group: &str,
    ends: &BTreeMap<(String, i32), i64>,
    events: u64,
    outputs_per_event: f64,
    timeout: Duration,
) -> anyhow::Result<Run> {
    let reader: BaseConsumer = base.clone().set("group.id", group).create()?;
    let deadline = Instant::now() + timeout;
    let mut first: Option<(Instant, i64, f64)> = None;
    loop {
        service.check_alive()?;
        anyhow::ensure!(
            Instant::now() < deadline,
            "{name} did not finish the backlog within {} s",
            timeout.as_secs()
        );
        let (done, total) = committed(&reader, ends)?;
        let now = Instant::now();
        if first.is_none() && done > 0 {
            first = Some((now, done, service.cpu_seconds()?));
            tracing::info!(run = name, "first commit; measuring");
        }
        if let Some((t0, done0, cpu0)) = first
            && done >= total
        {
            let seconds = now.duration_since(t0).as_secs_f64().max(1e-3);
            // Offsets include transaction markers; scale the measured share of the range to events.
            let share = (done - done0) as f64 / total.max(1) as f64;
            let measured = events as f64 * share;
            let cpu = service.cpu_seconds()? - cpu0;
            let events_per_s = measured / seconds;
            return Ok(Run {
                name,
                events: measured as u64,
                seconds,
                events_per_s,
                records_out_per_s: events_per_s * outputs_per_event,
                cpu_s_per_million: cpu / measured.max(1.0) * 1e6,
                peak_rss_mib: service.peak_rss_mib()?,
            });
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Creates the passthrough's output topics (6 partitions, like the feeds) if missing.
pub async fn ensure_output_topic(base: &ClientConfig) -> anyhow::Result<()> {
    use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
    let admin: AdminClient<rdkafka::client::DefaultClientContext> = base.clone().create()?;
    let names: Vec<String> = (0..OUTPUT_TOPICS).map(output_topic).collect();
    let topics: Vec<NewTopic<'_>> = names
        .iter()
        .map(|t| NewTopic::new(t, 6, TopicReplication::Fixed(1)))
        .collect();
    for r in admin
        .create_topics(&topics, &AdminOptions::new())
        .await
        .context("creating the passthrough topic")?
    {
        match r {
            Ok(_) | Err((_, rdkafka::types::RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((t, e)) => anyhow::bail!("creating {t}: {e}"),
        }
    }
    Ok(())
}

/// A machine description for the results: CPU model, cores, memory.
pub fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("model name"))
                .map(|v| v.trim_start_matches([' ', '\t', ':']).trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let mem_gib = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
        })
        .map_or(0.0, |kib| kib / 1024.0 / 1024.0);
    format!("{cores} cores, {cpu}, {mem_gib:.0} GiB")
}
