//! One subject's rolling history (a pseudonymous person, or a place by UPRN): the contacts of
//! the last 90 days, one per incident or case however many events it had, and what it adds up
//! to as of a moment: counts by window, agency and incident type, open cases, markers, flags.
//!
//! The history after a set of observations does not depend on the order they arrived in from
//! different incidents (one incident's events keep their order: they share a key), so a rebuilt
//! or rebalanced service ends in the same state as one that ran throughout. The one exception is
//! at the 90-day horizon: an incident whose events straddle it may be kept or dropped depending
//! on whether a much newer contact arrived between them, which needs two partitions to be some
//! 90 days apart in event time.

use std::collections::BTreeMap;

use bluelight_avro::records::{AgencyKind, EventType, Id, PersonRole, Vulnerability};
use serde::{Deserialize, Serialize};

use super::rules::{Rules, SubjectKind};

pub const DAY_MS: i64 = 86_400_000;
/// Contacts older than this (before the newest one) are dropped: no rule looks further back.
pub const KEEP_DAYS: u32 = 90;
/// At most this many contacts are kept per subject, the newest. A subject past it is already
/// far past every rule's threshold, and the limit keeps one record's size bounded.
pub const MAX_CONTACTS: usize = 200;
/// The windows every summary counts over.
pub const WINDOWS: [u32; 3] = [7, 30, 90];

/// What one canonical event says about one subject (the `repartition.context-contacts.v1` record).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Observation {
    pub subject: String,
    pub kind: SubjectKind,
    /// `incident/<id>` or `case/<id>`: the contact the event belongs to.
    pub reference: String,
    pub event_id: Id,
    pub event_type: EventType,
    /// When it happened (the event's `occurred_at`), ms since the epoch.
    pub at: i64,
    pub incident_type: Option<String>,
    pub agencies: Vec<AgencyKind>,
    pub org: String,
    pub roles: Vec<PersonRole>,
    pub markers: Vec<Vulnerability>,
}

/// One incident or case involving the subject.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Contact {
    pub reference: String,
    /// The earliest event seen of it: the evidence a flag quotes.
    pub event_id: Id,
    /// When it began, ms.
    pub at: i64,
    /// Its latest event, ms.
    pub last_at: i64,
    pub incident_type: Option<String>,
    /// Agencies requested or attending, in order, once each.
    pub agencies: Vec<AgencyKind>,
    pub org: String,
    pub roles: Vec<PersonRole>,
    pub markers: Vec<Vulnerability>,
    /// A case not yet closed (always false for incidents).
    pub open_case: bool,
}

/// A subject's contacts, oldest first (by start, then reference).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct History {
    pub contacts: Vec<Contact>,
    /// The latest moment any observation was of (ms): contacts are kept for 90 days before it.
    /// A high-water mark, not the newest contact's start, so a retraction never brings back
    /// what had aged out.
    #[serde(default)]
    pub newest: i64,
}

fn merge<T: Ord + Copy>(into: &mut Vec<T>, from: &[T]) {
    into.extend_from_slice(from);
    into.sort_unstable();
    into.dedup();
}

impl History {
    /// Applies one observation; returns whether anything changed (a repeat changes nothing).
    pub fn observe(&mut self, o: &Observation) -> bool {
        let retracted = matches!(
            o.event_type,
            EventType::IncidentRetracted | EventType::CaseRetracted
        );
        let found = self
            .contacts
            .iter()
            .position(|c| c.reference == o.reference);
        let mut changed = false;
        match (found, retracted) {
            (Some(i), true) => {
                self.contacts.remove(i);
                changed = true;
            }
            (None, true) => {}
            (found, false) => {
                let i = match found {
                    Some(i) => i,
                    None => {
                        self.contacts.push(Contact::opened(o));
                        changed = true;
                        self.contacts.len() - 1
                    }
                };
                changed |= self.contacts[i].merge(o);
            }
        }
        if changed {
            self.contacts
                .sort_by(|a, b| (a.at, &a.reference).cmp(&(b.at, &b.reference)));
        }
        changed |= o.at > self.newest;
        self.newest = self.newest.max(o.at);
        let horizon = self.newest - i64::from(KEEP_DAYS) * DAY_MS;
        let kept = self.contacts.len();
        self.contacts.retain(|c| c.last_at >= horizon);
        if self.contacts.len() > MAX_CONTACTS {
            let drop = self.contacts.len() - MAX_CONTACTS;
            self.contacts.drain(..drop);
        }
        changed || self.contacts.len() != kept
    }

    /// What the history says as of `as_of` (ms), counting only contacts begun by then.
    pub fn summarise(&self, kind: SubjectKind, rules: &Rules, as_of: i64) -> Summary {
        let seen: Vec<&Contact> = self.contacts.iter().filter(|c| c.at <= as_of).collect();
        summarise(&seen, kind, rules, as_of)
    }

    /// What the history says as of `o`'s moment once `o` is applied, and the latest contact
    /// before it (not `o`'s own), without changing or copying the history: the projector's
    /// view of a subject as of an event it is deciding.
    pub fn summarise_with(&self, o: &Observation, rules: &Rules) -> (Summary, Option<&Contact>) {
        let as_of = o.at;
        let mut own = self
            .contacts
            .iter()
            .find(|c| c.reference == o.reference)
            .cloned()
            .unwrap_or_else(|| Contact::opened(o));
        own.merge(o);
        let earlier = self
            .contacts
            .iter()
            .rfind(|c| c.at <= as_of && c.reference != o.reference);
        let mut seen: Vec<&Contact> = self
            .contacts
            .iter()
            .filter(|c| c.at <= as_of && c.reference != o.reference)
            .collect();
        if own.at <= as_of {
            let at = seen.partition_point(|c| (c.at, &c.reference) < (own.at, &own.reference));
            seen.insert(at, &own);
        }
        (summarise(&seen, o.kind, rules, as_of), earlier)
    }
}

impl Contact {
    /// The contact an observation opens, before the observation is merged in.
    fn opened(o: &Observation) -> Self {
        Contact {
            reference: o.reference.clone(),
            event_id: o.event_id,
            at: o.at,
            last_at: o.at,
            incident_type: None,
            agencies: Vec::new(),
            org: o.org.clone(),
            roles: Vec::new(),
            markers: Vec::new(),
            open_case: o.reference.starts_with("case/"),
        }
    }

    /// Merges one observation of this contact in; returns whether anything changed.
    fn merge(&mut self, o: &Observation) -> bool {
        let before = self.clone();
        if (o.at, o.event_id) < (self.at, self.event_id) {
            self.at = o.at;
            self.event_id = o.event_id;
        }
        if o.at >= self.last_at {
            self.last_at = o.at;
            if o.incident_type.is_some() {
                self.incident_type.clone_from(&o.incident_type);
            }
            self.open_case = self.open_case && o.event_type != EventType::CaseClosed;
        }
        merge(&mut self.agencies, &o.agencies);
        merge(&mut self.roles, &o.roles);
        merge(&mut self.markers, &o.markers);
        *self != before
    }
}

/// Adds one to `key`'s count, allocating the key only the first time it is met.
fn count(counts: &mut BTreeMap<String, u32>, key: &str) {
    match counts.get_mut(key) {
        Some(n) => *n += 1,
        None => {
            counts.insert(key.to_owned(), 1);
        }
    }
}

/// What the contacts begun by `as_of` (`seen`, oldest first) add up to.
fn summarise(seen: &[&Contact], kind: SubjectKind, rules: &Rules, as_of: i64) -> Summary {
    let windows = WINDOWS
        .iter()
        .map(|days| {
            let since = as_of - i64::from(*days) * DAY_MS;
            let mut w = Window {
                days: *days,
                contacts: 0,
                by_agency: BTreeMap::new(),
                by_type: BTreeMap::new(),
            };
            for c in seen.iter().filter(|c| c.at > since) {
                w.contacts += 1;
                for a in &c.agencies {
                    count(&mut w.by_agency, agency_name(*a));
                }
                if let Some(t) = &c.incident_type {
                    count(&mut w.by_type, t);
                }
            }
            w
        })
        .collect();
    let mut markers = Vec::new();
    for c in seen {
        merge(&mut markers, &c.markers);
    }
    let flags = rules
        .about(kind)
        .filter_map(|r| {
            let since = r.since(as_of);
            let matched: Vec<&&Contact> = seen
                .iter()
                .filter(|c| c.at > since && r.counts(c))
                .collect();
            let count = u32::try_from(matched.len()).unwrap_or(u32::MAX);
            if count < r.at_least {
                return None;
            }
            let last_agency = matched
                .last()
                .and_then(|c| c.agencies.first())
                .map_or("an unrecorded agency", |a| agency_name(*a));
            Some(Flag {
                rule: r.id.clone(),
                explanation: r
                    .explain
                    .replace("{count}", &count.to_string())
                    .replace("{days}", &r.window_days.to_string())
                    .replace("{last_agency}", &last_agency.to_lowercase()),
                count,
                window_days: r.window_days,
                at_least: r.at_least,
                evidence: matched.iter().map(|c| c.event_id).collect(),
            })
        })
        .collect();
    Summary {
        as_of,
        windows,
        open_cases: u32::try_from(seen.iter().filter(|c| c.open_case).count()).unwrap_or(u32::MAX),
        markers,
        last_contact: seen.last().map(|c| LastContact {
            at: c.at,
            incident_type: c.incident_type.clone(),
            agencies: c
                .agencies
                .iter()
                .map(|a| agency_name(*a).to_owned())
                .collect(),
        }),
        flags,
        rules_version: rules.version.clone(),
    }
}

/// The canonical name of an agency kind, as the schema spells it.
pub fn agency_name(a: AgencyKind) -> &'static str {
    match a {
        AgencyKind::Police => "POLICE",
        AgencyKind::FireRescue => "FIRE_RESCUE",
        AgencyKind::Ambulance => "AMBULANCE",
        AgencyKind::Coastguard => "COASTGUARD",
        AgencyKind::LocalAuthority => "LOCAL_AUTHORITY",
        AgencyKind::MentalHealth => "MENTAL_HEALTH",
        AgencyKind::Prosecution => "PROSECUTION",
        AgencyKind::WitnessCare => "WITNESS_CARE",
        AgencyKind::VictimServices => "VICTIM_SERVICES",
        AgencyKind::Other => "OTHER",
    }
}

/// Contacts in one window before the moment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Window {
    pub days: u32,
    pub contacts: u32,
    /// Contacts each agency was requested for or attended.
    pub by_agency: BTreeMap<String, u32>,
    pub by_type: BTreeMap<String, u32>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LastContact {
    pub at: i64,
    pub incident_type: Option<String>,
    pub agencies: Vec<String>,
}

/// A rule that holds, and why: counts and event ids, never narratives.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Flag {
    pub rule: String,
    pub explanation: String,
    pub count: u32,
    pub window_days: u32,
    /// The rule's threshold: it holds from this many contacts in the window.
    #[serde(default)]
    pub at_least: u32,
    /// The opening event id of each contact counted, oldest first.
    pub evidence: Vec<Id>,
}

/// A subject's context as of a moment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    pub as_of: i64,
    pub windows: Vec<Window>,
    pub open_cases: u32,
    pub markers: Vec<Vulnerability>,
    pub last_contact: Option<LastContact>,
    pub flags: Vec<Flag>,
    pub rules_version: String,
}

/// A subject's record on `state.context.v1`: its history, and what it adds up to as of its
/// newest contact (for people reading the topic; readers recompute as of their own moment).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SubjectState {
    pub kind: SubjectKind,
    pub history: History,
    pub summary: Summary,
}
