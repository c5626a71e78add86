//! Realistic, deterministic multi-agency scenarios, written in the source systems' own formats so
//! that driving them through the ingest API exercises every adapter.
//!
//! The same seed and start time always give the same stories, byte for byte.

use bluelight_avro::records::Timestamp;
use serde_json::json;

/// A story told by several source systems.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scenario {
    /// A road traffic collision needing fire (entrapment, fuel) and ambulance.
    RoadTrafficCollision,
    /// A domestic abuse call whose victim is registered for Victims' Code updates.
    DomesticAbuse,
    /// A mental-health welfare call handed to health partners (Right Care, Right Person).
    WelfareCall,
    /// The same caller ringing again about the same person.
    RepeatCaller,
    /// A flood declared a major incident by fire, sent to partners as a MAIT transfer with an
    /// M/ETHANE report.
    Flood,
}

impl Scenario {
    pub const ALL: [Scenario; 4] = [
        Scenario::RoadTrafficCollision,
        Scenario::DomesticAbuse,
        Scenario::WelfareCall,
        Scenario::RepeatCaller,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Scenario::RoadTrafficCollision => "rtc",
            Scenario::DomesticAbuse => "domestic-abuse",
            Scenario::WelfareCall => "welfare",
            Scenario::RepeatCaller => "repeat-caller",
            Scenario::Flood => "flood",
        }
    }
}

/// One request a source system would send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Payload {
    /// The source (as named in the sources file) that sends it.
    pub source: &'static str,
    pub content_type: &'static str,
    pub body: String,
    /// How many source records the body holds.
    pub records: usize,
}

pub const CAD_SOURCE: &str = "avon-police-cad";
pub const CRM_SOURCE: &str = "avon-victim-care-crm";
pub const RMS_SOURCE: &str = "avon-police-rms";
pub const MAIT_SOURCE: &str = "avon-fire-mait";

const RMS_HEADER: &str = "milestone,crime_ref,incident_id,occurred_at,offence_codes,oic_force,oic_collar,victim_ref,victim_enhanced,victim_enhanced_reasons,victim_contact_channel,victim_contact_frequency,suspect_ref,court,court_code,hearing_start,hearing_type";

/// SplitMix64: tiny, fast and fully determined by its seed.
#[derive(Debug, Clone)]
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[usize::try_from(self.below(items.len() as u64)).unwrap_or(0)]
    }
}

const PLACES: [(&str, &str, &str, f64, f64); 5] = [
    (
        "100120012345",
        "Temple Way, Bristol",
        "BS1 6HG",
        51.4545,
        -2.5879,
    ),
    (
        "100120054321",
        "Gloucester Road, Bristol",
        "BS7 8AA",
        51.4768,
        -2.5903,
    ),
    (
        "100120099887",
        "High Street, Weston-super-Mare",
        "BS23 1JB",
        51.3477,
        -2.9765,
    ),
    (
        "100120011223",
        "Wells Road, Bath",
        "BA2 3AA",
        51.3721,
        -2.3599,
    ),
    (
        "100120044556",
        "Station Road, Yate",
        "BS37 4AB",
        51.5402,
        -2.4109,
    ),
];

/// Generates scenario stories.
#[derive(Debug, Clone)]
pub struct Simulator {
    rng: Rng,
    start: Timestamp,
    story: u64,
    scenarios: Vec<Scenario>,
}

impl Simulator {
    /// `start` anchors every timestamp (pass the current time for a live stack, a fixed one in tests).
    pub fn new(seed: u64, start: Timestamp, scenarios: Vec<Scenario>) -> Self {
        let scenarios = if scenarios.is_empty() {
            Scenario::ALL.to_vec()
        } else {
            scenarios
        };
        Simulator {
            rng: Rng(seed),
            start,
            story: 0,
            scenarios,
        }
    }

    /// The next story: the requests its source systems send, in order.
    pub fn next_story(&mut self) -> (Scenario, Vec<Payload>) {
        let scenario = *self.rng.pick(&self.scenarios);
        self.story += 1;
        let n = self.story;
        let at = |minutes: i64| {
            iso(Timestamp(
                self.start.0 + (i64::try_from(n).unwrap_or(0) * 60 + minutes) * 60_000,
            ))
        };
        let (uprn, address, postcode, lat, lon) = *self.rng.pick(&PLACES);
        let location = json!({ "uprn": uprn, "address": address, "postcode": postcode, "lat": lat, "lon": lon });
        let incident = format!("INC-SIM-{:06}", n);
        let log = format!("AP-SIM-{:06}", n);
        let cad = |events: Vec<serde_json::Value>| Payload {
            source: CAD_SOURCE,
            content_type: "application/json",
            records: events.len(),
            body: json!({ "events": events }).to_string(),
        };
        let base = |action: &str, kind: &str, minutes: i64| json!({ "action": action, "incident_id": incident, "log_number": log, "occurred_at": at(minutes), "type": kind });
        let payloads = match scenario {
            Scenario::RoadTrafficCollision => {
                let trapped = self.rng.below(2) == 0;
                let mut open = base("open", "RTC-INJ", 0);
                open["grade"] = json!("1");
                open["location"] = location;
                open["hazards"] = if trapped {
                    json!(["FUEL", "TRAPPED"])
                } else {
                    json!(["FUEL"])
                };
                open["agencies_requested"] = json!(["FIRE", "AMB"]);
                open["casualties"] =
                    json!({ "serious": self.rng.below(3), "minor": self.rng.below(4) });
                open["persons"] = json!([{ "ref": format!("P-{n}-1"), "role": "CALLER" }]);
                let mut resource = base("resource", "RTC-INJ", 4);
                resource["units"] = json!([
                    { "callsign": format!("BRAVO{}", 10 + self.rng.below(80)), "org": "avon-police", "agency": "POLICE", "status": "ENROUTE" },
                    { "callsign": "TEMPLE1", "org": "avon-fire", "agency": "FRS", "status": "ASSIGNED" }
                ]);
                let mut close = base("close", "RTC-INJ", 95);
                close["closure_code"] = json!("RESOLVED");
                vec![cad(vec![open]), cad(vec![resource]), cad(vec![close])]
            }
            Scenario::DomesticAbuse => {
                let victim = format!("CRM-SIM-{n:06}");
                let mut open = base("open", "DOMESTIC", 0);
                open["grade"] = json!("1");
                open["location"] = location;
                open["persons"] = json!([
                    { "ref": format!("P-{n}-1"), "role": "IP", "flags": ["DA"] },
                    { "ref": format!("P-{n}-2"), "role": "SUSPECT" }
                ]);
                let registration = json!({
                    "action": "register", "victim_ref": victim, "occurred_at": at(180),
                    "case_refs": [format!("CRIME-SIM-{n:06}")], "enhanced_rights": true, "enhanced_reasons": ["DA"],
                    "contact": { "channel": *self.rng.pick(&["SMS", "EMAIL", "PHONE"]), "frequency": "MILESTONES" }
                });
                // The case that follows: recorded, arrest, charge, first hearing.
                let crime = format!("CRIME-SIM-{n:06}");
                let channel = *self.rng.pick(&["SMS", "EMAIL", "PHONE"]);
                let victim_cols = format!("{victim},Y,DA,{channel},MILESTONES");
                let rows = [
                    format!(
                        "RECORDED,{crime},{incident},{},008/01,52,PC{n},{victim_cols},,,,,",
                        at(120)
                    ),
                    format!(
                        "ARREST,{crime},{incident},{},,52,PC{n},{victim_cols},S-SIM-{n},,,,",
                        at(240)
                    ),
                    format!(
                        "CHARGE,{crime},{incident},{},008/01,52,PC{n},{victim_cols},S-SIM-{n},,,,",
                        at(1440)
                    ),
                    format!(
                        "HEARING_LISTED,{crime},{incident},{},,52,PC{n},{victim_cols},S-SIM-{n},Bristol Magistrates' Court,B01LY00,{},FAH",
                        at(1500),
                        at(20160)
                    ),
                ];
                vec![
                    cad(vec![open]),
                    Payload {
                        source: CRM_SOURCE,
                        content_type: "application/json",
                        records: 1,
                        body: json!({ "victims": [registration] }).to_string(),
                    },
                    Payload {
                        source: RMS_SOURCE,
                        content_type: "text/csv",
                        records: rows.len(),
                        body: format!("{RMS_HEADER}\n{}\n", rows.join("\n")),
                    },
                ]
            }
            Scenario::WelfareCall => {
                let mut open = base("open", "WELFARE", 0);
                open["grade"] = json!("2");
                open["location"] = location;
                open["agencies_requested"] = json!(["MHT"]);
                open["persons"] =
                    json!([{ "ref": format!("P-{n}-1"), "role": "SUBJECT", "flags": ["MH"] }]);
                let mut close = base("close", "WELFARE", 40);
                close["closure_code"] = json!("REFERRED");
                vec![cad(vec![open]), cad(vec![close])]
            }
            Scenario::RepeatCaller => {
                // The same caller (P-REPEAT-1) about the same person, again.
                let mut open = base("open", "WELFARE", 0);
                open["grade"] = json!("3");
                open["location"] = json!({ "uprn": "100120077889", "postcode": "BS5 9QP" });
                open["persons"] = json!([
                    { "ref": "P-REPEAT-1", "role": "CALLER" },
                    { "ref": "P-REPEAT-2", "role": "SUBJECT", "flags": ["ELDERLY"] }
                ]);
                let mut close = base("close", "WELFARE", 30);
                close["closure_code"] = json!("NFA");
                vec![cad(vec![open]), cad(vec![close])]
            }
            Scenario::Flood => {
                let serious = self.rng.below(4);
                let displaced = 20 + self.rng.below(200);
                let body = format!(
                    r#"<MAITMessage xmlns="urn:bluelight:mait:1">
  <Header>
    <MessageID>AFR-SIM-{n:06}</MessageID>
    <MessageType>NEW</MessageType>
    <SentAt>{sent}</SentAt>
    <SenderOrganisation>avon-fire</SenderOrganisation>
  </Header>
  <Incident>
    <IncidentID>{incident}</IncidentID>
    <LocalReference>AF-SIM-{n:06}</LocalReference>
    <IncidentType>FLOOD</IncidentType>
    <Priority>1</Priority>
    <Status>ONSCENE</Status>
    <OccurredAt>{occurred}</OccurredAt>
    <Location>
      <UPRN>{uprn}</UPRN>
      <Postcode>{postcode}</Postcode>
      <Latitude>{lat}</Latitude>
      <Longitude>{lon}</Longitude>
    </Location>
    <METHANE>
      <MajorIncidentDeclared>true</MajorIncidentDeclared>
      <ExactLocation>{address}</ExactLocation>
      <IncidentType>River flooding of homes and roads</IncidentType>
      <Hazards>Fast-flowing water; electricity in flooded buildings</Hazards>
      <Access>RVP at the fire station; approach from the north</Access>
      <Casualties><Fatal>0</Fatal><Serious>{serious}</Serious><Minor>3</Minor><Uninjured>{displaced}</Uninjured></Casualties>
      <EmergencyServicesPresent><Agency>FRS</Agency></EmergencyServicesPresent>
      <EmergencyServicesRequired><Agency>POLICE</Agency><Agency>AMB</Agency><Agency>LA</Agency></EmergencyServicesRequired>
      <ReportedAt>{sent}</ReportedAt>
    </METHANE>
    <Hazards><Hazard>WATER</Hazard><Hazard>ELEC</Hazard></Hazards>
    <AgenciesRequested><Agency>POLICE</Agency><Agency>AMB</Agency><Agency>LA</Agency></AgenciesRequested>
  </Incident>
</MAITMessage>
"#,
                    sent = at(10),
                    occurred = at(0),
                );
                vec![Payload {
                    source: MAIT_SOURCE,
                    content_type: "application/xml",
                    records: 1,
                    body,
                }]
            }
        };
        (scenario, payloads)
    }
}

fn iso(t: Timestamp) -> String {
    jiff::Timestamp::from_millisecond(t.0)
        .map_or_else(|_| "1970-01-01T00:00:00Z".to_owned(), |ts| ts.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adapters::{Adapter, SourceContext, by_name};

    #[test]
    fn the_same_seed_tells_the_same_stories_and_every_record_translates() {
        let start = Timestamp(1_795_300_000_000);
        let mut a = Simulator::new(7, start, Vec::new());
        let mut b = Simulator::new(7, start, Vec::new());
        let mut seen = std::collections::HashSet::new();
        for _ in 0..200 {
            let (scenario, payloads) = a.next_story();
            assert_eq!((scenario, payloads.clone()), b.next_story());
            seen.insert(scenario);
            for p in payloads {
                let source = match p.source {
                    CAD_SOURCE => ("avon-police", "cad", "cad"),
                    CRM_SOURCE => ("avon-victim-care", "victim-crm", "victim-crm"),
                    RMS_SOURCE => ("avon-police", "rms", "rms"),
                    _ => ("avon-fire", "mait", "mait"),
                };
                let adapter: std::sync::Arc<dyn Adapter> = by_name(source.2).expect("adapter");
                let ctx = SourceContext {
                    org: source.0.into(),
                    system: source.1.into(),
                    received_at: start,
                };
                let t = adapter.translate(p.body.as_bytes(), &ctx);
                assert!(
                    t.rejected.is_empty(),
                    "{scenario:?}: {}",
                    t.rejected
                        .iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join("\n")
                );
                assert_eq!(t.accepted.len(), p.records);
            }
        }
        assert_eq!(seen.len(), Scenario::ALL.len(), "every scenario comes up");
        assert_ne!(
            Simulator::new(8, start, Vec::new()).next_story(),
            Simulator::new(7, start, Vec::new()).next_story()
        );
    }
}
