//! Victim CRM records as JSON: registration, Enhanced Rights eligibility, contact preferences and
//! opt-out. Codes are mapped by `mappings/victim-crm.toml`.

use bluelight_avro::records::{
    ContactChannel, ContactPreferences, EnhancedRightsReason, EventType, Location, PersonIdentity,
    UpdateFrequency, VictimEvent,
};
use serde_json::Value;

use super::{
    Adapter, Canonical, Mappings, SourceContext, Translation,
    common::{enum_code, envelope},
    json::{self, Obj, Problems},
};
use crate::{Result, validate};

const TABLES: [&str; 4] = ["action", "enhanced_reason", "channel", "frequency"];
const MILLIS_PER_DAY: i64 = 86_400_000;

/// The victim CRM JSON adapter.
#[derive(Debug)]
pub struct VictimCrm {
    mappings: Mappings,
}

impl VictimCrm {
    /// With the mapping tables shipped in `producers/mappings/victim-crm.toml`.
    pub fn new() -> Result<Self> {
        let m = Mappings::parse(
            include_str!("../../mappings/victim-crm.toml"),
            "producers/mappings/victim-crm.toml",
        )?;
        Ok(VictimCrm {
            mappings: m.require(&TABLES)?,
        })
    }

    fn victim(
        &self,
        o: Obj<'_>,
        raw: &str,
        source: &SourceContext,
        p: &mut Problems,
    ) -> Option<VictimEvent> {
        let m = &self.mappings;
        let event_type = o
            .req_str("action", p)
            .and_then(|v| enum_code::<EventType>(m, "action", "action", v, p));
        let victim_ref = o
            .req_str("victim_ref", p)
            .and_then(|v| p.check("victim_ref", validate::reference(v)));
        let occurred_at = o
            .req_str("occurred_at", p)
            .and_then(|v| p.check("occurred_at", validate::timestamp(v)));
        let recorded_at = o
            .opt_str("recorded_at", p)
            .and_then(|v| p.check("recorded_at", validate::timestamp(v)));
        let case_ids: Vec<String> = o
            .str_list("case_refs", p)
            .into_iter()
            .enumerate()
            .filter_map(|(i, c)| p.check(&format!("case_refs[{i}]"), validate::reference(c)))
            .collect();
        let enhanced_given = o.opt_bool("enhanced_rights", p);
        let enhanced_invalid =
            o.map.get("enhanced_rights").is_some_and(|v| !v.is_null()) && enhanced_given.is_none();
        let mut enhanced_rights = enhanced_given.unwrap_or(false);
        let mut enhanced_reasons: Vec<EnhancedRightsReason> = o
            .str_list("enhanced_reasons", p)
            .into_iter()
            .filter_map(|r| enum_code(m, "enhanced_reason", "enhanced_reasons", r, p))
            .collect();
        let reasons_given = o
            .map
            .get("enhanced_reasons")
            .and_then(Value::as_array)
            .is_some_and(|a| !a.is_empty());
        if enhanced_rights && !reasons_given {
            p.add(
                "enhanced_reasons",
                "must name at least one reason when enhanced_rights is true",
            );
        }
        if !enhanced_rights && !enhanced_invalid && reasons_given {
            p.add(
                "enhanced_rights",
                "is false but enhanced_reasons are given; set it to true or remove the reasons",
            );
        }

        let contact_path = o.field("contact");
        let contact = match o.opt_obj("contact", &contact_path, p) {
            Some(c) => {
                let channel = c.req_str("channel", p).and_then(|v| {
                    enum_code::<ContactChannel>(m, "channel", &c.field("channel"), v, p)
                });
                let frequency = c.req_str("frequency", p).and_then(|v| {
                    enum_code::<UpdateFrequency>(m, "frequency", &c.field("frequency"), v, p)
                });
                let opted_out = c.opt_bool("opted_out", p).unwrap_or(false);
                channel
                    .zip(frequency)
                    .map(|(channel, frequency)| ContactPreferences {
                        channel,
                        frequency,
                        opted_out,
                    })
            }
            None => {
                if !p.0.iter().any(|x| x.field == "contact") {
                    p.add(
                        "contact",
                        "is required: how (and whether) the victim wants to be updated",
                    );
                }
                None
            }
        };

        let person_path = o.field("person");
        let identity = o.opt_obj("person", &person_path, p).map(|s| {
            let address_path = s.field("address");
            let address = s.opt_obj("address", &address_path, p).map(|a| Location {
                address: a.opt_str("line", p).map(str::to_owned),
                postcode: a
                    .opt_str("postcode", p)
                    .and_then(|v| p.check(&a.field("postcode"), validate::postcode(v))),
                uprn: a
                    .opt_str("uprn", p)
                    .and_then(|v| p.check(&a.field("uprn"), validate::uprn(v))),
                ..Location::default()
            });
            PersonIdentity {
                forenames: s.opt_str("forenames", p).map(str::to_owned),
                surname: s.opt_str("surname", p).map(str::to_owned),
                date_of_birth: s
                    .opt_str("dob", p)
                    .and_then(|v| p.check(&s.field("dob"), validate::date(v))),
                age_band: None,
                gender: None,
                phone: s.opt_str("phone", p).map(str::to_owned),
                address,
            }
        });

        let (event_type, victim_ref, occurred_at, mut contact) =
            (event_type?, victim_ref?, occurred_at?, contact?);
        if !p.0.is_empty() {
            return None;
        }
        if event_type == EventType::VictimOptedOut {
            contact.opted_out = true;
        }
        // The Victims' Code gives every victim under 18 Enhanced Rights, whatever the CRM says.
        let dob = identity.as_ref().and_then(|i| i.date_of_birth);
        if dob.is_some_and(|d| under_18(d.0, occurred_at.0))
            && !enhanced_reasons.contains(&EnhancedRightsReason::Under18)
        {
            enhanced_rights = true;
            enhanced_reasons.push(EnhancedRightsReason::Under18);
        }
        Some(VictimEvent {
            case_ids,
            enhanced_rights,
            enhanced_reasons,
            identity,
            ..VictimEvent::new(
                envelope(event_type, source, occurred_at, recorded_at, raw),
                &victim_ref,
                contact,
            )
        })
    }
}

/// Whether someone born on day `dob` (days since 1970) is under 18 at `at` (ms since 1970).
fn under_18(dob: i32, at_ms: i64) -> bool {
    let birth = jiff::civil::date(1970, 1, 1).checked_add(jiff::Span::new().days(i64::from(dob)));
    let on = jiff::civil::date(1970, 1, 1)
        .checked_add(jiff::Span::new().days(at_ms.div_euclid(MILLIS_PER_DAY)));
    match (birth, on) {
        (Ok(birth), Ok(on)) => birth
            .checked_add(jiff::Span::new().years(18))
            .is_ok_and(|adult| on < adult),
        _ => false,
    }
}

impl Adapter for VictimCrm {
    fn name(&self) -> &'static str {
        "victim-crm"
    }

    fn content_types(&self) -> &'static [&'static str] {
        &["application/json"]
    }

    fn translate(&self, input: &[u8], source: &SourceContext) -> Translation {
        json::translate(self.name(), input, "victims", |o, raw, p| {
            self.victim(o, raw, source, p)
                .map(|r| Canonical::Victim(Box::new(r)))
        })
    }
}

#[cfg(test)]
mod tests;
