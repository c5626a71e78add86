//! The fold stage: each subject's observations into its history, written with its summary to
//! the compacted `state.context.v1` in one transaction with the input offsets.
//!
//! A batch works on copies of the histories it touches and hands them over only once its
//! transaction commits, so an aborted batch, read again, is applied again in full.

use std::{
    collections::{BTreeMap, BTreeSet, HashMap},
    sync::atomic::{AtomicBool, Ordering},
};

use rdkafka::{Message, message::BorrowedMessage, producer::BaseRecord};

use super::{CONTACTS_TOPIC, ContextConfig, DLQ_TOPIC, STATE_TOPIC, Status, metrics::METRICS};
use crate::{
    Error, Result,
    context::{History, Observation, Rules, SubjectKind, Summary},
    eos::{Follower, Input, Runner, header},
};

/// The route stage's reason shows in readiness under this prefix while it has one.
const ROUTE: &str = "route stage";

/// The histories held, bounded: past `max` the least recently touched are dropped from memory.
pub(crate) struct Held {
    subjects: HashMap<String, (SubjectKind, History, u64)>,
    touched: u64,
    max: usize,
}

impl Held {
    pub(crate) fn new(max: usize) -> Self {
        Held {
            subjects: HashMap::new(),
            touched: 0,
            max: max.max(1),
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.subjects.len()
    }

    pub(crate) fn get(&self, subject: &str) -> Option<&(SubjectKind, History, u64)> {
        self.subjects.get(subject)
    }

    pub(crate) fn put(&mut self, subject: String, kind: SubjectKind, history: History) {
        self.touched += 1;
        self.subjects.insert(subject, (kind, history, self.touched));
        if self.subjects.len() > self.max {
            self.evict();
        }
    }

    pub(crate) fn remove(&mut self, subject: &str) {
        self.subjects.remove(subject);
    }

    /// The subject's history, if held.
    pub(crate) fn history(&self, subject: &str) -> Option<&History> {
        self.subjects.get(subject).map(|(_, h, _)| h)
    }

    /// Drops the least recently touched 1% (at least one) in one pass.
    fn evict(&mut self) {
        let n = (self.max / 100).max(1).min(self.subjects.len());
        let mut ages: Vec<u64> = self.subjects.values().map(|(_, _, t)| *t).collect();
        let (_, cut, _) = ages.select_nth_unstable(n - 1);
        let cut = *cut;
        let before = self.subjects.len();
        self.subjects.retain(|_, (_, _, t)| *t > cut);
        let dropped = before - self.subjects.len();
        METRICS.evicted.inc_by(dropped as u64);
        tracing::warn!(
            dropped,
            max = self.max,
            "context histories at --max-subjects: the least recently seen left memory (they stay on {STATE_TOPIC})"
        );
    }
}

/// Applies one `state.context.v1` record of `group` (records of other groups are not ours).
pub(crate) fn apply(held: &mut Held, group: &str, m: &BorrowedMessage<'_>) {
    if header(m, "bl-group").is_some_and(|g| g != group.as_bytes()) {
        return;
    }
    let Some(subject) = m.key().and_then(|k| std::str::from_utf8(k).ok()) else {
        return;
    };
    match m.payload().map(serde_json::from_slice::<StateRead>) {
        None => held.remove(subject),
        Some(Ok(s)) => held.put(subject.to_owned(), s.kind, s.history),
        Some(Err(e)) => tracing::warn!(error = %e, "unreadable {STATE_TOPIC} record; skipped"),
    }
}

pub(super) fn run(
    cfg: &ContextConfig,
    stop: &AtomicBool,
    status: &Status,
    route: &Status,
) -> Result<()> {
    let group = cfg.fold.group.clone();
    let writer = cfg.fold.transactional_id.clone();
    status.set(Some(format!("starting: reading {STATE_TOPIC}")));
    let mut held = Held::new(cfg.max_subjects);
    let mut reader = cfg.fold.base()?;
    reader.set("group.id", format!("{group}-state-reader"));
    let follower = Follower::start(reader, STATE_TOPIC, cfg.fold.timeout, stop, |m| {
        apply(&mut held, &group, m);
    })?;
    tracing::info!(
        subjects = held.len(),
        "context histories rebuilt from {STATE_TOPIC}"
    );
    METRICS
        .subjects
        .set(i64::try_from(held.len()).unwrap_or(i64::MAX));
    let mut runner = Runner::start(cfg.fold.clone(), METRICS.fold.clone(), stop, status)?;
    status.set(None);
    tracing::info!(group = %group, rules = cfg.rules.rules.len(), rules_version = %cfg.rules.version, "folding {CONTACTS_TOPIC} into {STATE_TOPIC}");
    // Records of other instances of the group: ours are already in memory, and newer there.
    let others = |held: &mut Held, m: &BorrowedMessage<'_>| {
        if header(m, "bl-writer") != Some(writer.as_bytes()) {
            apply(held, &group, m);
        }
    };
    while !stop.load(Ordering::Relaxed) {
        match route.get() {
            Some(why) => status.set(Some(format!("{ROUTE}: {why}"))),
            None if status.get().is_some_and(|s| s.starts_with(ROUTE)) => status.set(None),
            None => {}
        }
        follower.apply(|m| others(&mut held, m));
        let polled = runner.poll(stop, status)?;
        if polled.moved_here {
            follower.catch_up(|m| others(&mut held, m));
        }
        if polled.batch.is_empty() {
            continue;
        }
        match transact(cfg, &runner, &held, &polled.batch, stop) {
            Ok(staged) => {
                for (subject, (kind, history)) in staged {
                    held.put(subject, kind, history);
                }
                METRICS
                    .subjects
                    .set(i64::try_from(held.len()).unwrap_or(i64::MAX));
                if route.get().is_none() {
                    status.set(None);
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, records = polled.batch.len(), "fold transaction aborted; the batch will be read again");
                runner.recover(&e, stop, status)?;
            }
        }
    }
    Ok(())
}

type Staged = BTreeMap<String, (SubjectKind, History)>;

/// A [`crate::context::SubjectState`] as read back: its summary (for people reading the topic) is skipped, as
/// every reader summarises as of its own moment.
#[derive(serde::Deserialize)]
struct StateRead {
    kind: SubjectKind,
    history: History,
}

/// A [`crate::context::SubjectState`] as written, borrowed: a history is encoded without being copied.
#[derive(serde::Serialize)]
struct StateRef<'a> {
    kind: SubjectKind,
    history: &'a History,
    summary: &'a Summary,
}

fn transact(
    cfg: &ContextConfig,
    runner: &Runner,
    held: &Held,
    batch: &[Input],
    stop: &AtomicBool,
) -> Result<Staged> {
    runner.begin()?;
    let mut staged: Staged = BTreeMap::new();
    let mut changed = BTreeSet::new();
    for m in batch {
        let Some(payload) = m.payload.as_deref() else {
            continue;
        };
        if m.group
            .as_deref()
            .is_some_and(|g| g != cfg.fold.group.as_bytes())
        {
            continue; // another deployment's route stage (a blue/green pair, or tests)
        }
        let o: Observation = match serde_json::from_slice(payload) {
            Ok(o) => o,
            Err(e) => {
                METRICS
                    .dead_letters
                    .with_label_values(&["unreadable"])
                    .inc();
                runner.dead_letter(
                    DLQ_TOPIC,
                    m,
                    "unreadable",
                    &format!("not an observation: {e}"),
                    stop,
                )?;
                continue;
            }
        };
        let entry = staged.entry(o.subject.clone()).or_insert_with(|| {
            held.get(&o.subject)
                .map_or((o.kind, History::default()), |(k, h, _)| (*k, h.clone()))
        });
        if entry.1.observe(&o) {
            changed.insert(o.subject.clone());
        }
    }
    let headers = crate::eos::state_headers(&cfg.fold);
    for subject in &changed {
        let Some((kind, history)) = staged.get(subject) else {
            continue;
        };
        let summary = history.summarise(*kind, &cfg.rules, history.newest);
        count_raised(&cfg.rules, held.get(subject), *kind, &summary);
        let state = StateRef {
            kind: *kind,
            history,
            summary: &summary,
        };
        let value = serde_json::to_vec(&state)
            .map_err(|e| Error::Config(format!("encoding a context history: {e}")))?;
        runner.send(
            BaseRecord::to(STATE_TOPIC)
                .key(subject.as_bytes())
                .payload(&value)
                .headers(headers.clone()),
            stop,
        )?;
    }
    runner.commit(batch, stop)?;
    Ok(staged)
}

/// Counts the flags that hold now and did not before this batch.
fn count_raised(
    rules: &Rules,
    before: Option<&(SubjectKind, History, u64)>,
    kind: SubjectKind,
    now: &Summary,
) {
    if now.flags.is_empty() {
        return; // nothing holds now, so nothing was raised (and the old summary is not needed)
    }
    let held_before: BTreeSet<String> = before
        .map(|(_, h, _)| {
            h.summarise(kind, rules, h.newest)
                .flags
                .into_iter()
                .map(|f| f.rule)
                .collect()
        })
        .unwrap_or_default();
    for f in &now.flags {
        if !held_before.contains(&f.rule) {
            METRICS.flags_raised.with_label_values(&[&f.rule]).inc();
        }
    }
}
