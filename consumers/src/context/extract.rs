//! Canonical events to observations: one per subject the event is about, each keyed by the
//! subject's pseudonymous key, so all of a person's (or a place's) contacts meet on one
//! partition of `repartition.context-contacts.v1`, whichever incidents and cases they came from.

use bluelight_avro::records::{
    AgencyKind, CaseEvent, Envelope, IncidentEvent, PersonRole, Vulnerability,
};

use super::{history::Observation, rules::SubjectKind};
use crate::project::transform::Pseudonymiser;

/// The context service's own pseudonyms: state keys never hold a person reference or a UPRN,
/// and the same secret gives the projector the same keys to look context up by.
#[derive(Debug, Clone)]
pub struct SubjectKeys(Pseudonymiser);

impl SubjectKeys {
    pub fn new(secret: &[u8]) -> Self {
        SubjectKeys(Pseudonymiser::new(secret, "bluelight-context"))
    }

    /// The key of a person, from the source's person reference.
    pub fn person(&self, person_ref: &str) -> String {
        format!(
            "person/{}",
            self.0.pseudonym(&format!("person\0{person_ref}"))
        )
    }

    /// The key of a place, from its UPRN.
    pub fn location(&self, uprn: &str) -> String {
        format!(
            "location/{}",
            self.0.pseudonym(&format!("uprn\0{}", uprn.trim()))
        )
    }
}

/// What an incident event says about its people and its place.
pub fn incident(keys: &SubjectKeys, e: &IncidentEvent) -> Vec<Observation> {
    incident_with_refs(keys, e)
        .into_iter()
        .map(|(_, o)| o)
        .collect()
}

/// [`incident`], each observation with the person reference or UPRN it is about (the projector
/// sends these, pseudonymised per agreement, in context blocks).
pub fn incident_with_refs(keys: &SubjectKeys, e: &IncidentEvent) -> Vec<(String, Observation)> {
    let mut agencies: Vec<AgencyKind> = e
        .agencies_requested
        .iter()
        .copied()
        .chain(e.resources.iter().map(|r| r.agency))
        .collect();
    agencies.sort_unstable();
    agencies.dedup();
    let base = Observation {
        incident_type: e.incident_type.as_ref().map(|c| c.code.clone()),
        agencies,
        ..observation(format!("incident/{}", e.incident_id), &e.envelope)
    };
    let mut out = people(
        keys,
        &base,
        e.people
            .iter()
            .map(|p| (p.person_ref.as_str(), p.role, p.vulnerabilities.as_slice())),
    );
    if let Some(uprn) = e
        .location
        .as_ref()
        .and_then(|l| l.uprn.as_deref())
        .filter(|u| !u.trim().is_empty())
    {
        out.push((
            uprn.trim().to_owned(),
            Observation {
                subject: keys.location(uprn),
                kind: SubjectKind::Location,
                ..base
            },
        ));
    }
    out
}

/// What a case event says about its victims and suspects.
pub fn case(keys: &SubjectKeys, e: &CaseEvent) -> Vec<Observation> {
    let base = observation(format!("case/{}", e.case_id), &e.envelope);
    let victims = e
        .victims
        .iter()
        .map(|v| (v.victim_ref.as_str(), PersonRole::Victim, &[][..]));
    let suspects = e
        .suspects
        .iter()
        .map(|p| (p.person_ref.as_str(), p.role, p.vulnerabilities.as_slice()));
    people(keys, &base, victims.chain(suspects))
        .into_iter()
        .map(|(_, o)| o)
        .collect()
}

/// An observation of the contact `reference` from the event's envelope, about nobody yet.
fn observation(reference: String, env: &Envelope) -> Observation {
    Observation {
        subject: String::new(),
        kind: SubjectKind::Person,
        reference,
        event_id: env.event_id,
        event_type: env.event_type,
        at: env.occurred_at.0,
        incident_type: None,
        agencies: Vec::new(),
        org: env.source_org.clone(),
        roles: Vec::new(),
        markers: Vec::new(),
    }
}

/// One observation per person (a person linked twice, say as victim and witness, once with both
/// roles), in the order they first appear, each with the person reference.
fn people<'a>(
    keys: &SubjectKeys,
    base: &Observation,
    links: impl Iterator<Item = (&'a str, PersonRole, &'a [Vulnerability])>,
) -> Vec<(String, Observation)> {
    let mut out: Vec<(String, Observation)> = Vec::new();
    for (person_ref, role, markers) in links {
        if person_ref.trim().is_empty() {
            continue;
        }
        let i = match out.iter().position(|(r, _)| r == person_ref) {
            Some(i) => i,
            None => {
                out.push((
                    person_ref.to_owned(),
                    Observation {
                        subject: keys.person(person_ref),
                        ..base.clone()
                    },
                ));
                out.len() - 1
            }
        };
        let o = &mut out[i].1;
        o.roles.push(role);
        o.markers.extend_from_slice(markers);
        o.roles.sort_unstable();
        o.roles.dedup();
        o.markers.sort_unstable();
        o.markers.dedup();
    }
    out
}
