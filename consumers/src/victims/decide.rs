//! Which updates a case event owes its victims, with no I/O.

use std::collections::HashMap;

use bluelight_avro::records::{
    CaseEvent, ContactChannel, Envelope, EventType, Id, Timestamp, VictimUpdate,
};
use uuid::Uuid;

use super::{Calendar, Entitlement, VictimsCode};
use crate::Result;

/// Update ids are UUIDv5 of the trigger, victim and entitlement: a replay gives the same id, which
/// is also the idempotency key the notifier sends.
const UPDATE_NAMESPACE: Uuid = Uuid::from_u128(0x2b7c_41d9_8e3a_4f10_b5c6_d7e8_f9a0_1b2c);

/// What the victim register (`bl.victim.v1`) says of a victim, newer than the case event's copy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Preferences {
    pub enhanced_rights: bool,
    pub opted_out: bool,
    pub channel: ContactChannel,
}

/// One decision for one victim of one case event.
#[derive(Debug, Clone, PartialEq)]
pub enum Owed {
    /// An update the victim is owed, by `due_by`.
    Update(Box<VictimUpdate>),
    /// The victim opted out: nothing is sent, and the decision is audited.
    OptedOut {
        victim_ref: String,
        entitlement: String,
        right: String,
    },
}

/// The updates `case` owes each of its victims under the Code. `register` gives the latest
/// preferences known for a victim; without it the case event's own copy applies, and without
/// either the victim is a standard victim written to by letter.
pub fn owed(
    code: &VictimsCode,
    calendar: &Calendar,
    case: &CaseEvent,
    register: &dyn Fn(&str) -> Option<Preferences>,
    now: Timestamp,
) -> Result<Vec<Owed>> {
    let env = &case.envelope;
    let Some(entitlement) = code.triggered_by(env.event_type) else {
        return Ok(Vec::new());
    };
    let parameters = facts(entitlement, case, calendar);
    let mut out = Vec::new();
    for v in &case.victims {
        let prefs = register(&v.victim_ref).unwrap_or_else(|| Preferences {
            enhanced_rights: v.enhanced_rights,
            opted_out: v.contact.as_ref().is_some_and(|c| c.opted_out),
            channel: v
                .contact
                .as_ref()
                .map_or(ContactChannel::Letter, |c| c.channel),
        });
        if prefs.opted_out {
            out.push(Owed::OptedOut {
                victim_ref: v.victim_ref.clone(),
                entitlement: entitlement.id.clone(),
                right: entitlement.right.clone(),
            });
            continue;
        }
        let enhanced = prefs.enhanced_rights || v.enhanced_rights;
        let days = if enhanced {
            entitlement.enhanced_working_days
        } else {
            entitlement.standard_working_days
        };
        let due_by = calendar.due_by(env.occurred_at, days)?;
        let id = Id(Uuid::new_v5(
            &UPDATE_NAMESPACE,
            format!("{}\0{}\0{}", env.event_id, v.victim_ref, entitlement.id).as_bytes(),
        ));
        let mut envelope = Envelope::new(
            EventType::VictimUpdateDue,
            "bluelight-victim-updates",
            &env.source_org,
            env.occurred_at,
        );
        envelope.event_id = id;
        envelope.recorded_at = now;
        envelope.causation_id = Some(env.event_id);
        envelope.correlation_id = env.correlation_id;
        envelope.marking = env.marking.clone();
        out.push(Owed::Update(Box::new(VictimUpdate {
            envelope,
            victim_ref: v.victim_ref.clone(),
            case_id: case.case_id.clone(),
            right: entitlement.right.clone(),
            trigger_event_id: env.event_id,
            trigger_event_type: env.event_type,
            triggered_at: env.occurred_at,
            due_by,
            template_id: entitlement.template.clone(),
            parameters: parameters.clone(),
            channel: prefs.channel,
        })));
    }
    Ok(out)
}

/// The facts an entitlement's template asks for, from codes, labels, dates and the court's name.
/// A fact the event does not carry is left out, never guessed.
fn facts(e: &Entitlement, case: &CaseEvent, calendar: &Calendar) -> HashMap<String, String> {
    let local = |t: Timestamp| {
        jiff::Timestamp::from_millisecond(t.0)
            .ok()
            .map(|ts| ts.to_zoned(calendar.time_zone().clone()))
    };
    let label =
        |c: &bluelight_avro::records::Code| c.label.clone().unwrap_or_else(|| c.code.clone());
    let mut out = HashMap::new();
    for p in &e.parameters {
        let value = match p.as_str() {
            "offence" => case
                .offences
                .first()
                .map(|o| o.title.clone().unwrap_or_else(|| o.ho_code.clone())),
            "bail_return_date" => case
                .bail
                .as_ref()
                .and_then(|b| b.return_at)
                .and_then(local)
                .map(|z| z.strftime("%A %-d %B %Y").to_string()),
            "bail_conditions" => case.bail.as_ref().map(|b| {
                b.conditions
                    .iter()
                    .map(label)
                    .collect::<Vec<_>>()
                    .join("; ")
            }),
            "court" => case.hearing.as_ref().map(|h| h.court.clone()),
            "hearing_date" => case
                .hearing
                .as_ref()
                .and_then(|h| local(h.starts_at))
                .map(|z| z.strftime("%A %-d %B %Y").to_string()),
            "hearing_time" => case
                .hearing
                .as_ref()
                .and_then(|h| local(h.starts_at))
                .map(|z| z.strftime("%H:%M").to_string()),
            "hearing_type" => case.hearing.as_ref().map(|h| label(&h.hearing_type)),
            "hearing_outcome" => case
                .hearing
                .as_ref()
                .and_then(|h| h.outcome.as_ref())
                .map(label),
            "outcome" => case.outcome.as_ref().map(label),
            _ => None,
        };
        if let Some(v) = value.filter(|v| !v.is_empty()) {
            out.insert(p.clone(), v);
        }
    }
    out
}
