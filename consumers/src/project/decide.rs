//! Deciding every agreement for one event and building what each recipient gets, with no I/O:
//! the same code serves the Kafka service, `bluelight agreements explain` and the tests.

use std::{collections::HashMap, sync::Arc};

use bluelight_avro::records::{
    Classification, Disclosure, DisclosureKind, DisclosureRef, Envelope, EventRef, EventType,
    FieldTransform, Id, Timestamp,
};
use serde_json::Value;
use uuid::Uuid;

use super::{
    context::{self, Block, ContextSource, NoContext},
    event::Event,
    plan::{CARRIED, Plan},
    receipts::Receipt,
    transform::Pseudonymiser,
};
use crate::{
    Error, Result,
    context::{Rules, SubjectKeys},
    policy::{Agreement, Entity, Policy, Transform, fields::Kind},
};

/// An audit record's field lists: disclosed, transformed, withheld.
type Lists = (Vec<String>, Vec<FieldTransform>, Vec<String>);

/// Disclosure and notice ids are UUIDv5 of what they are about, so a replay after a crash gives
/// the same ids and the audit trail never shows one disclosure under two names.
const DISCLOSURE_NAMESPACE: Uuid = Uuid::from_u128(0x6c1f_7f0e_5a2b_4d3c_9e8f_0a1b_2c3d_4e5f);

/// What one agreement decides for one event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The clause at this index matched: the recipient gets the record.
    Shares {
        clause: usize,
    },
    /// A clause matched but the record's marking is above the agreement's ceiling.
    AboveCeiling {
        clause: usize,
    },
    NotInForce,
    /// The event's source organisation is not one of the agreement's controllers.
    NotController,
    /// The recipient has no feed of the event's entity.
    NoFeed,
    /// No clause matched: each clause's id and why not.
    NoClause(Vec<(String, String)>),
}

/// One record for one recipient's feed, and its audit record.
#[derive(Debug, Clone)]
pub struct FeedRecord {
    pub topic: String,
    /// The key the recipient knows the subject by.
    pub key: String,
    pub record: Event,
    pub audit: Disclosure,
    /// Index of the agreement in the policy.
    pub agreement: usize,
}

impl FeedRecord {
    /// What the recipient's copy records for retractions: this feed got this event.
    pub fn receipt(&self) -> Receipt {
        receipt(&self.topic, &self.key, &self.audit)
    }
}

/// One recipient's copy written straight to Avro, and its audit record, also written.
#[derive(Debug, Clone)]
pub struct Encoded {
    pub topic: String,
    /// The key the recipient knows the subject by.
    pub key: String,
    /// An Avro datum of the entity's schema (no wire-format header: the schema id is the
    /// feed subject's, which the service knows).
    pub body: Vec<u8>,
    /// The audit record (`audit.disclosure.v1`), an Avro datum of `Disclosure`.
    pub audit: Vec<u8>,
    /// The audit record's key: the subject's id as the source knows it.
    pub subject_id: String,
    /// Indexes of the agreement in the policy and of its clause.
    pub agreement: usize,
    pub clause: usize,
    pub source_event_id: Id,
    /// Whether the copy carries a context block.
    pub context: bool,
}

/// A `Disclosure` borrowed from what it is made of, written with the same fields in the same
/// order (the tests hold the bytes equal): an audit record per copy without copying the
/// agreement's field lists each time.
#[derive(serde::Serialize)]
struct AuditView<'a> {
    envelope: &'a Envelope,
    kind: DisclosureKind,
    source_event_id: Id,
    source_event_type: EventType,
    source_topic: &'a str,
    subject_id: &'a str,
    recipient: &'a str,
    feed: &'a str,
    agreement_id: &'a str,
    agreement_version: &'a str,
    clause_id: &'a str,
    purposes: &'a [String],
    lawful_basis: &'a str,
    policy_version: &'a str,
    disclosed_by: &'a str,
    fields_disclosed: &'a [String],
    fields_transformed: &'a [FieldTransform],
    fields_withheld: &'a [String],
    context_clause_id: Option<&'a str>,
    context_evidence: &'a [Id],
}

fn receipt(topic: &str, key: &str, audit: &Disclosure) -> Receipt {
    first_receipt(
        topic,
        key,
        &audit.recipient,
        &audit.agreement_id,
        &audit.agreement_version,
        audit.source_event_id,
        &audit.clause_id,
    )
}

/// A feed's receipt of its first event from a subject.
fn first_receipt(
    feed: &str,
    sent_key: &str,
    recipient: &str,
    agreement_id: &str,
    agreement_version: &str,
    event_id: Id,
    clause_id: &str,
) -> Receipt {
    Receipt {
        feed: feed.to_owned(),
        recipient: recipient.to_owned(),
        agreement_id: agreement_id.to_owned(),
        agreement_version: agreement_version.to_owned(),
        sent_key: sent_key.to_owned(),
        events: vec![super::receipts::Sent {
            event_id,
            clause_id: clause_id.to_owned(),
            retracted: false,
        }],
    }
}

/// Everything one event gives rise to.
#[derive(Debug)]
pub struct Projection<F = FeedRecord> {
    pub feeds: Vec<F>,
    /// Agreements whose clause matched but whose ceiling the record's marking is above.
    pub above_ceiling: Vec<usize>,
    /// Agreements whose condition failed to evaluate (treated as not matching: default deny).
    pub condition_errors: Vec<(usize, String)>,
}

pub struct Projector {
    policy: Arc<Policy>,
    plans: Vec<Vec<Plan>>,
    pseudonymisers: Vec<Pseudonymiser>,
    /// The agreements that have a clause listing each event type: the only ones worth deciding.
    by_type: HashMap<EventType, Vec<usize>>,
    /// Per entity, the top-level fields conditions read, and whether each is a record (bound as
    /// an empty map when absent, so `has(casualties.serious)` is false rather than an error).
    vars: HashMap<Entity, Vec<(String, bool)>>,
    /// CEL's standard library, built once (about 46 µs); each event gets an inner scope.
    root: cel::Context<'static, 'static>,
    disclosed_by: String,
    /// The context service's subject keys (from the same secret), to look histories up by.
    keys: SubjectKeys,
    /// The flag rules blocks are summarised with: none (version "none") until
    /// [`Projector::with_context_rules`], so blocks then carry counts but no flags.
    rules: Arc<Rules>,
    /// Per agreement and clause, the field lists of a copy that carries a context block (for
    /// agreements with a context clause).
    with_context: Vec<Vec<Option<Lists>>>,
    /// Per agreement and clause, the slot of its condition: clauses with the same condition
    /// text share one, so an event evaluates each distinct condition once however many
    /// agreements repeat it (agreements with several recipients often do).
    slots: Vec<Vec<Option<usize>>>,
    slot_count: usize,
}

impl std::fmt::Debug for Projector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Projector")
            .field("policy_version", &self.policy.version)
            .field("agreements", &self.policy.agreements.len())
            .finish_non_exhaustive()
    }
}

impl Projector {
    /// `secret` keys the pseudonyms; `disclosed_by` names this service in the audit records.
    pub fn new(policy: Arc<Policy>, secret: &[u8], disclosed_by: &str) -> Self {
        let mut by_type: HashMap<EventType, Vec<usize>> = HashMap::new();
        let mut vars: HashMap<Entity, Vec<(String, bool)>> = HashMap::new();
        let mut plans = Vec::new();
        let mut pseudonymisers = Vec::new();
        let mut with_context = Vec::new();
        let mut texts: HashMap<&str, usize> = HashMap::new();
        let slots: Vec<Vec<Option<usize>>> = policy
            .agreements
            .iter()
            .map(|a| {
                a.clauses
                    .iter()
                    .map(|c| {
                        c.condition.as_ref().map(|(text, _)| {
                            let next = texts.len();
                            *texts.entry(text.as_str()).or_insert(next)
                        })
                    })
                    .collect()
            })
            .collect();
        let slot_count = texts.len();
        for (i, a) in policy.agreements.iter().enumerate() {
            pseudonymisers.push(Pseudonymiser::new(secret, &a.id));
            let compiled: Vec<Plan> = a.clauses.iter().map(|c| Plan::new(c.entity, c)).collect();
            with_context.push(
                compiled
                    .iter()
                    .map(|plan| {
                        a.context.as_ref().map(|c| {
                            context::lists(c, (&plan.disclosed, &plan.transformed, &plan.withheld))
                        })
                    })
                    .collect(),
            );
            plans.push(compiled);
            for c in &a.clauses {
                for t in &c.event_types {
                    let list = by_type.entry(*t).or_default();
                    if !list.contains(&i) {
                        list.push(i);
                    }
                }
                let Some((_, program)) = &c.condition else {
                    continue;
                };
                let fields = c.entity.fields();
                let list = vars.entry(c.entity).or_default();
                for v in program.references().variables() {
                    if let Some(f) = fields.get(v)
                        && !list.iter().any(|(n, _)| n == v)
                    {
                        list.push((v.to_owned(), f.kind == Kind::Record));
                    }
                }
            }
        }
        Projector {
            policy,
            plans,
            pseudonymisers,
            by_type,
            vars,
            root: cel::Context::default(),
            disclosed_by: disclosed_by.to_owned(),
            keys: SubjectKeys::new(secret),
            rules: Arc::new(Rules::none()),
            with_context,
            slots,
            slot_count,
        }
    }

    /// Summarises context blocks with `rules` (the context service's, so flags agree).
    #[must_use]
    pub fn with_context_rules(mut self, rules: Arc<Rules>) -> Self {
        self.rules = rules;
        self
    }

    /// Whether any agreement has a context clause: only then is context worth following.
    pub fn wants_context(&self) -> bool {
        self.policy.agreements.iter().any(|a| a.context.is_some())
    }

    pub fn policy(&self) -> &Arc<Policy> {
        &self.policy
    }

    /// Decides one agreement for an event. `json` is the event's JSON view.
    pub fn decide(
        &self,
        agreement: usize,
        event: &Event,
        scope: &cel::Context<'_, '_>,
        today: jiff::civil::Date,
    ) -> std::result::Result<Verdict, String> {
        let mut why = Vec::new();
        let mut memo = vec![None; self.slot_count];
        self.decide_in(agreement, event, scope, today, &mut memo, Some(&mut why))
    }

    /// [`Projector::decide`] for the hot path: conditions already evaluated for this event are
    /// taken from `memo` (by slot), and reasons for clauses that do not apply are written only
    /// when `why` is given (`explain` and the tests want them; projecting does not).
    fn decide_in(
        &self,
        agreement: usize,
        event: &Event,
        scope: &cel::Context<'_, '_>,
        today: jiff::civil::Date,
        memo: &mut [Option<bool>],
        mut why: Option<&mut Vec<(String, String)>>,
    ) -> std::result::Result<Verdict, String> {
        let Some(a) = self.policy.agreements.get(agreement) else {
            return Ok(Verdict::NotInForce);
        };
        let env = event.envelope();
        let entity = event.entity();
        if !a.in_force(today) {
            return Ok(Verdict::NotInForce);
        }
        if !a.controllers.contains(&env.source_org) {
            return Ok(Verdict::NotController);
        }
        if !a.recipient.feeds.contains(&entity) {
            return Ok(Verdict::NoFeed);
        }
        let mut note = |clause: &str, reason: &dyn Fn() -> String| {
            if let Some(why) = why.as_deref_mut() {
                why.push((clause.to_owned(), reason()));
            }
        };
        for (i, c) in a.clauses.iter().enumerate() {
            if c.entity != entity {
                note(&c.id, &|| format!("covers {} events", c.entity.name()));
                continue;
            }
            if !c.event_types.contains(&env.event_type) {
                note(&c.id, &|| format!("does not list {:?}", env.event_type));
                continue;
            }
            if let Some((text, program)) = &c.condition {
                let slot = self.slots[agreement][i];
                let holds = match slot.and_then(|s| memo.get(s).copied().flatten()) {
                    Some(known) => known,
                    None => {
                        let holds = match program.execute(scope) {
                            Ok(cel::Value::Bool(b)) => b,
                            Ok(other) => return Err(format!("condition {text:?} gave {other:?}")),
                            Err(e) => return Err(format!("condition {text:?} failed: {e}")),
                        };
                        if let Some(m) = slot.and_then(|s| memo.get_mut(s)) {
                            *m = Some(holds);
                        }
                        holds
                    }
                };
                if !holds {
                    note(&c.id, &|| format!("condition {text:?} is false"));
                    continue;
                }
            }
            return Ok(if env.marking.classification > a.ceiling {
                Verdict::AboveCeiling { clause: i }
            } else {
                Verdict::Shares { clause: i }
            });
        }
        Ok(Verdict::NoClause(
            why.map(std::mem::take).unwrap_or_default(),
        ))
    }

    /// The CEL scope of one event: the top-level fields the conditions read.
    pub fn scope<'a>(&'a self, entity: Entity, json: &Value) -> cel::Context<'a, 'static> {
        self.bind(entity, |name| json.get(name))
    }

    /// [`Projector::scope`] read from the typed record: only the fields conditions read are
    /// converted, the rest of the record is not touched.
    pub fn scope_of(&self, event: &Event) -> cel::Context<'_, 'static> {
        let vars = self
            .vars
            .get(&event.entity())
            .map_or(&[][..], Vec::as_slice);
        let mut found = Top {
            vars,
            values: Vec::with_capacity(vars.len()),
        };
        if !vars.is_empty() {
            let _ = match event {
                Event::Incident(r) => serde::Serialize::serialize(r, &mut found),
                Event::Case(r) => serde::Serialize::serialize(r, &mut found),
                Event::Victim(r) => serde::Serialize::serialize(r, &mut found),
            };
        }
        self.bind(event.entity(), |name| {
            found
                .values
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| v)
        })
    }

    /// An inner scope with each variable the entity's conditions read, from `get` (a record
    /// absent or null is bound as an empty map, so `has(casualties.serious)` is false rather
    /// than an error).
    fn bind<'v>(
        &self,
        entity: Entity,
        get: impl Fn(&str) -> Option<&'v Value>,
    ) -> cel::Context<'_, 'static> {
        let mut scope = self.root.new_inner_scope();
        for (name, is_record) in self.vars.get(&entity).into_iter().flatten() {
            let v = match get(name) {
                Some(Value::Null) | None if *is_record => {
                    cel::Value::Map(cel::objects::Map::from(HashMap::<String, cel::Value>::new()))
                }
                Some(v) => cel_value(v),
                None => cel::Value::Null,
            };
            scope.add_variable_from_value(name.clone(), v);
        }
        scope
    }

    /// Every disclosure an event gives rise to. Retracting events give none here: see
    /// [`Projector::retract`]. The reference path: each copy built as a typed record.
    pub fn project(
        &self,
        event: &Event,
        today: jiff::civil::Date,
        now: Timestamp,
    ) -> Result<Projection> {
        self.project_with(event, today, now, &NoContext)
    }

    /// [`Projector::project`] with subjects' histories from `source`, for context blocks.
    pub fn project_with(
        &self,
        event: &Event,
        today: jiff::civil::Date,
        now: Timestamp,
        source: &dyn ContextSource,
    ) -> Result<Projection> {
        let json = event
            .to_json()
            .map_err(|e| internal(event, &e.to_string()))?;
        let scope = self.scope(event.entity(), &json);
        self.each(event, today, &scope, source, |i, clause, block| {
            self.disclose_with(i, clause, event, &json, now, block)
        })
    }

    /// [`Projector::project`] with each copy written straight to Avro (the service's path; the
    /// tests hold it equal to the reference).
    pub fn project_encoded(
        &self,
        event: &Event,
        today: jiff::civil::Date,
        now: Timestamp,
    ) -> Result<Projection<Encoded>> {
        self.project_encoded_with(event, today, now, &NoContext)
    }

    /// [`Projector::project_encoded`] with subjects' histories from `source`.
    pub fn project_encoded_with(
        &self,
        event: &Event,
        today: jiff::civil::Date,
        now: Timestamp,
        source: &dyn ContextSource,
    ) -> Result<Projection<Encoded>> {
        let scope = self.scope_of(event);
        self.each(event, today, &scope, source, |i, clause, block| {
            self.disclose_encoded(i, clause, event, now, block)
        })
    }

    fn each<F>(
        &self,
        event: &Event,
        today: jiff::civil::Date,
        scope: &cel::Context<'_, '_>,
        source: &dyn ContextSource,
        mut disclose: impl FnMut(usize, usize, Option<&Block>) -> Result<F>,
    ) -> Result<Projection<F>> {
        let mut out = Projection {
            feeds: Vec::new(),
            above_ceiling: Vec::new(),
            condition_errors: Vec::new(),
        };
        let env = event.envelope();
        if env.retracts.is_some() || env.event_type == event.entity().retracted() {
            return Ok(out);
        }
        let Some(candidates) = self.by_type.get(&env.event_type) else {
            return Ok(out);
        };
        // Gathered on the first agreement that asks, then shared by the rest.
        let mut gathered = None;
        let mut memo = vec![None; self.slot_count];
        for &i in candidates {
            match self.decide_in(i, event, scope, today, &mut memo, None) {
                Ok(Verdict::Shares { clause }) => {
                    let block = match (&self.policy.agreements[i].context, event) {
                        (Some(c), Event::Incident(e)) => {
                            let subjects = gathered.get_or_insert_with(|| {
                                context::gather(&self.keys, &self.rules, source, e)
                            });
                            context::block(
                                c,
                                &self.pseudonymisers[i],
                                subjects,
                                e.envelope.occurred_at.0,
                                &self.rules.version,
                            )
                        }
                        _ => None,
                    };
                    out.feeds.push(disclose(i, clause, block.as_ref())?);
                }
                Ok(Verdict::AboveCeiling { .. }) => out.above_ceiling.push(i),
                Ok(_) => {}
                Err(why) => out.condition_errors.push((i, why)),
            }
        }
        Ok(out)
    }

    /// The disclosure id and reference of one clause's copy of an event.
    fn reference(&self, agreement: usize, clause: usize, event: &Event) -> DisclosureRef {
        let a = &self.policy.agreements[agreement];
        let c = &a.clauses[clause];
        DisclosureRef {
            disclosure_id: Id(Uuid::new_v5(
                &DISCLOSURE_NAMESPACE,
                format!(
                    "disclosure\0{}\0{}\0{}\0{}",
                    event.envelope().event_id,
                    a.id,
                    c.id,
                    a.recipient.org
                )
                .as_bytes(),
            )),
            agreement_id: a.id.clone(),
            clause_id: c.id.clone(),
            recipient: a.recipient.org.clone(),
        }
    }

    fn disclose_encoded(
        &self,
        agreement: usize,
        clause: usize,
        event: &Event,
        now: Timestamp,
        block: Option<&Block>,
    ) -> Result<Encoded> {
        let a = &self.policy.agreements[agreement];
        let c = &a.clauses[clause];
        let plan = &self.plans[agreement][clause];
        let entity = event.entity();
        let at_ms = event.envelope().occurred_at.0;
        let reference = self.reference(agreement, clause, event);
        let p = &self.pseudonymisers[agreement];
        let ctx = super::write::Ctx {
            p,
            at_ms,
            disclosure: &reference,
            context: block.map(|b| &b.record),
        };
        let mut body = Vec::with_capacity(1024);
        match event {
            Event::Incident(r) => plan.write(r, &ctx, &mut body),
            Event::Case(r) => plan.write(r, &ctx, &mut body),
            Event::Victim(r) => plan.write(r, &ctx, &mut body),
        }
        .map_err(|e| {
            internal(
                event,
                &format!("clause {} of {} gives no valid record: {e}", c.id, a.id),
            )
        })?;
        let key = plan
            .key(entity.key_field(), event.key(), p, at_ms)
            .ok_or_else(|| {
                internal(
                    event,
                    &format!("clause {} of {} does not send the key", c.id, a.id),
                )
            })?;
        let topic = feed_topic(&a.recipient.org, entity);
        let env = event.envelope();
        let envelope = self.audit_envelope(event, reference.disclosure_id, now);
        let (disclosed, transformed, withheld) = self.lists(agreement, clause, block.is_some());
        let mut audit = Vec::with_capacity(1024);
        bluelight_avro::codec::fast::write(
            &AuditView {
                envelope: &envelope,
                kind: DisclosureKind::Disclosure,
                source_event_id: env.event_id,
                source_event_type: env.event_type,
                source_topic: env.event_type.topic(),
                subject_id: event.key(),
                recipient: &a.recipient.org,
                feed: &topic,
                agreement_id: &a.id,
                agreement_version: &a.version,
                clause_id: &c.id,
                purposes: &a.purposes,
                lawful_basis: &a.lawful_basis,
                policy_version: &self.policy.version,
                disclosed_by: &self.disclosed_by,
                fields_disclosed: disclosed,
                fields_transformed: transformed,
                fields_withheld: withheld,
                context_clause_id: block.and(a.context.as_ref()).map(|c| c.id.as_str()),
                context_evidence: block.map_or(&[][..], |b| &b.evidence),
            },
            &mut audit,
        )
        .map_err(|e| internal(event, &format!("audit record: {e}")))?;
        Ok(Encoded {
            topic,
            key,
            body,
            audit,
            subject_id: event.key().to_owned(),
            agreement,
            clause,
            source_event_id: env.event_id,
            context: block.is_some(),
        })
    }

    /// The recipient's copy of `event` under one clause, with its audit record.
    pub fn disclose(
        &self,
        agreement: usize,
        clause: usize,
        event: &Event,
        json: &Value,
        now: Timestamp,
    ) -> Result<FeedRecord> {
        self.disclose_with(agreement, clause, event, json, now, None)
    }

    /// The field lists an audit record quotes for one clause's copy: with the context block's
    /// fields when the copy carries one.
    fn lists(
        &self,
        agreement: usize,
        clause: usize,
        with_block: bool,
    ) -> (&[String], &[FieldTransform], &[String]) {
        match (with_block, &self.with_context[agreement][clause]) {
            (true, Some((d, t, w))) => (d, t, w),
            _ => {
                let plan = &self.plans[agreement][clause];
                (&plan.disclosed, &plan.transformed, &plan.withheld)
            }
        }
    }

    /// [`Projector::disclose`], the copy carrying `block` if there is one.
    fn disclose_with(
        &self,
        agreement: usize,
        clause: usize,
        event: &Event,
        json: &Value,
        now: Timestamp,
        block: Option<&Block>,
    ) -> Result<FeedRecord> {
        let a = &self.policy.agreements[agreement];
        let c = &a.clauses[clause];
        let plan = &self.plans[agreement][clause];
        let env = event.envelope();
        let entity = event.entity();
        let topic = feed_topic(&a.recipient.org, entity);
        let reference = self.reference(agreement, clause, event);
        let disclosure_id = reference.disclosure_id;
        let mut projected = plan.apply(json, &self.pseudonymisers[agreement], env.occurred_at.0);
        if let Some(e) = projected.get_mut(CARRIED).and_then(Value::as_object_mut) {
            e.insert(
                "disclosure".into(),
                serde_json::to_value(&reference).map_err(|e| internal(event, &e.to_string()))?,
            );
        }
        if let (Some(b), Some(o)) = (block, projected.as_object_mut()) {
            o.insert(
                super::plan::CONTEXT.into(),
                serde_json::to_value(&b.record).map_err(|e| internal(event, &e.to_string()))?,
            );
        }
        let record = Event::from_json(entity, projected).map_err(|e| {
            internal(
                event,
                &format!("clause {} of {} gives no valid record: {e}", c.id, a.id),
            )
        })?;
        let key = record.key().to_owned();
        let (d, t, w) = self.lists(agreement, clause, block.is_some());
        let lists = (d.to_vec(), t.to_vec(), w.to_vec());
        let mut audit = self.audit(
            a,
            &c.id,
            DisclosureKind::Disclosure,
            event,
            &topic,
            disclosure_id,
            now,
            lists,
        );
        if let (Some(b), Some(cc)) = (block, &a.context) {
            audit.context_clause_id = Some(cc.id.clone());
            audit.context_evidence.clone_from(&b.evidence);
        }
        Ok(FeedRecord {
            topic,
            key,
            record,
            audit,
            agreement,
        })
    }

    /// Retraction notices for the recipients of the events `event` withdraws or corrects:
    /// exactly those in `receipts`, whatever the agreements say now (a recipient that holds the
    /// data must hear it is withdrawn, even after its agreement ended). Marks the events told.
    pub fn retract(
        &self,
        event: &Event,
        receipts: &mut [Receipt],
        now: Timestamp,
    ) -> Result<Vec<FeedRecord>> {
        let env = event.envelope();
        let entity = event.entity();
        // Reasons come from code lists (closure or outcome codes), never the source's free text:
        // a notice reaches recipients whatever their agreements now allow.
        let (targets, reason): (Option<Id>, String) = if let Some(r) = &env.retracts {
            (Some(r.event_id), whole_subject_reason(event))
        } else if let Some(r) = &env.supersedes {
            (Some(r.event_id), format!("corrected by {}", env.source_org))
        } else if env.event_type == entity.retracted() {
            (None, whole_subject_reason(event))
        } else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        for r in receipts.iter_mut() {
            let stand_in = ended(r);
            let Receipt {
                feed,
                recipient,
                agreement_id,
                agreement_version,
                sent_key,
                events,
            } = r;
            for sent in events.iter_mut() {
                if sent.retracted || targets.is_some_and(|t| t != sent.event_id) {
                    continue;
                }
                sent.retracted = true;
                let notice_id = Id(Uuid::new_v5(
                    &DISCLOSURE_NAMESPACE,
                    format!("retraction\0{}\0{}\0{}", env.event_id, feed, sent.event_id).as_bytes(),
                ));
                let reference = DisclosureRef {
                    disclosure_id: notice_id,
                    agreement_id: agreement_id.clone(),
                    clause_id: sent.clause_id.clone(),
                    recipient: recipient.clone(),
                };
                let mut notice_env = Envelope::with_id(
                    notice_id,
                    entity.retracted(),
                    &env.source_system,
                    &env.source_org,
                    env.occurred_at,
                    env.recorded_at,
                );
                notice_env.causation_id = Some(env.event_id);
                // Left OFFICIAL (Envelope::new): the notice carries a key and a code, nothing of
                // the record.
                notice_env.retracts = Some(EventRef {
                    event_id: sent.event_id,
                    reason: reason.clone(),
                });
                notice_env.disclosure = Some(reference);
                let record = notice(entity, &notice_env, sent_key)
                    .map_err(|e| internal(event, &format!("retraction notice: {e}")))?;
                let agreement = self
                    .policy
                    .agreements
                    .iter()
                    .position(|a| &a.id == agreement_id);
                let audit = match agreement.map(|i| &self.policy.agreements[i]) {
                    Some(a) => self.audit(
                        a,
                        &sent.clause_id,
                        DisclosureKind::Retraction,
                        event,
                        feed,
                        notice_id,
                        now,
                        notice_fields(entity),
                    ),
                    None => {
                        // The agreement has ended since: the retraction is still owed and logged.
                        let mut d = self.audit(
                            &stand_in,
                            &sent.clause_id,
                            DisclosureKind::Retraction,
                            event,
                            feed,
                            notice_id,
                            now,
                            notice_fields(entity),
                        );
                        d.agreement_version.clone_from(agreement_version);
                        d
                    }
                };
                out.push(FeedRecord {
                    topic: feed.clone(),
                    key: sent_key.clone(),
                    record,
                    audit,
                    agreement: agreement.unwrap_or(usize::MAX),
                });
            }
        }
        Ok(out)
    }

    #[allow(clippy::too_many_arguments)]
    fn audit(
        &self,
        a: &Agreement,
        clause_id: &str,
        kind: DisclosureKind,
        event: &Event,
        feed: &str,
        disclosure_id: Id,
        now: Timestamp,
        (disclosed, transformed, withheld): (Vec<String>, Vec<FieldTransform>, Vec<String>),
    ) -> Disclosure {
        let env = event.envelope();
        let envelope = self.audit_envelope(event, disclosure_id, now);
        Disclosure {
            envelope,
            kind,
            source_event_id: env.event_id,
            source_event_type: env.event_type,
            source_topic: env.event_type.topic().to_owned(),
            subject_id: event.key().to_owned(),
            recipient: a.recipient.org.clone(),
            feed: feed.to_owned(),
            agreement_id: a.id.clone(),
            agreement_version: a.version.clone(),
            clause_id: clause_id.to_owned(),
            purposes: a.purposes.clone(),
            lawful_basis: a.lawful_basis.clone(),
            policy_version: self.policy.version.clone(),
            disclosed_by: self.disclosed_by.clone(),
            fields_disclosed: disclosed,
            fields_transformed: transformed,
            fields_withheld: withheld,
            context_clause_id: None,
            context_evidence: Vec::new(),
        }
    }

    /// The envelope of an audit record about `event`.
    fn audit_envelope(&self, event: &Event, disclosure_id: Id, now: Timestamp) -> Envelope {
        let env = event.envelope();
        let mut envelope = Envelope::with_id(
            disclosure_id,
            EventType::DisclosureRecorded,
            &self.disclosed_by,
            &env.source_org,
            now,
            now,
        );
        envelope.correlation_id = env.correlation_id;
        envelope.causation_id = Some(env.event_id);
        // Left OFFICIAL (Envelope::new): the audit record names fields, never values.
        envelope
    }

    /// What a copy written by the fast path records for retractions.
    pub fn receipt(&self, f: &Encoded) -> Receipt {
        let a = &self.policy.agreements[f.agreement];
        first_receipt(
            &f.topic,
            &f.key,
            &a.recipient.org,
            &a.id,
            &a.version,
            f.source_event_id,
            &a.clauses[f.clause].id,
        )
    }

    /// How many fields (or whole records) a clause withholds.
    pub fn withheld(&self, agreement: usize, clause: usize) -> usize {
        self.plans[agreement][clause].withheld.len()
    }

    /// The pseudonymiser of an agreement, for tests and `explain`.
    pub fn pseudonymiser(&self, agreement: usize) -> Option<&Pseudonymiser> {
        self.pseudonymisers.get(agreement)
    }

    /// Whether any clause of the agreement pseudonymises its entity's key.
    pub fn key_transform(&self, agreement: usize, entity: Entity) -> Transform {
        self.policy
            .agreements
            .get(agreement)
            .and_then(|a| {
                a.clauses.iter().find(|c| c.entity == entity).and_then(|c| {
                    c.fields
                        .iter()
                        .find(|f| f.path == entity.key_field())
                        .map(|f| f.transform)
                })
            })
            .unwrap_or(Transform::Keep)
    }
}

/// What is remembered of an agreement in force, so its end can be announced even after its file
/// is gone (kept on `state.disclosures.v1` under `agreement/<id>`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Ended {
    pub id: String,
    pub version: String,
    pub recipient: String,
    pub feeds: Vec<Entity>,
    /// The first controller, as the notice's source organisation.
    pub controller: String,
    pub in_force: bool,
}

impl Ended {
    pub fn of(a: &Agreement) -> Self {
        Ended {
            id: a.id.clone(),
            version: a.version.clone(),
            recipient: a.recipient.org.clone(),
            feeds: a.recipient.feeds.clone(),
            controller: a.controllers.first().cloned().unwrap_or_default(),
            in_force: true,
        }
    }
}

/// The records that tell a recipient an agreement has ended: one per feed it has, keyed
/// `agreement/<id>`, with an id fixed by the agreement and version so a repeat is recognisable.
pub fn sharing_ended(a: &Ended, now: Timestamp) -> Result<Vec<(String, String, Event)>> {
    let id = Id(Uuid::new_v5(
        &DISCLOSURE_NAMESPACE,
        format!("sharing-ended\0{}\0{}", a.id, a.version).as_bytes(),
    ));
    let key = format!("agreement/{}", a.id);
    let mut out = Vec::new();
    for entity in &a.feeds {
        let mut env = Envelope::new(
            EventType::SharingEnded,
            "bluelight-project",
            &a.controller,
            now,
        );
        env.event_id = id;
        env.recorded_at = now;
        env.disclosure = Some(DisclosureRef {
            disclosure_id: id,
            agreement_id: a.id.clone(),
            clause_id: String::new(),
            recipient: a.recipient.clone(),
        });
        let record = notice(*entity, &env, &key).map_err(|e| Error::Projection {
            event_id: id.to_string(),
            reason: format!("sharing-ended notice: {e}"),
        })?;
        out.push((feed_topic(&a.recipient, *entity), key.clone(), record));
    }
    Ok(out)
}

/// A notice on a feed: the envelope and the key, and nothing of any record. A retracted
/// incident's status says so; a victim record's required fields get fixed placeholders (the
/// notice carries no facts about the victim).
fn notice(entity: Entity, envelope: &Envelope, key: &str) -> serde_json::Result<Event> {
    let mut json = serde_json::Map::new();
    json.insert(CARRIED.into(), serde_json::to_value(envelope)?);
    json.insert(entity.key_field().into(), Value::String(key.to_owned()));
    match entity {
        Entity::Incident if envelope.event_type == EventType::IncidentRetracted => {
            json.insert("status".into(), Value::String("RETRACTED".into()));
        }
        Entity::Victim => {
            json.insert("enhanced_rights".into(), Value::Bool(false));
            json.insert(
                "contact".into(),
                serde_json::json!({"channel": "LETTER", "frequency": "ON_REQUEST", "opted_out": true}),
            );
        }
        _ => {}
    }
    Event::from_json(entity, Value::Object(json))
}

/// `feed.<recipient>.<entity>.v1`.
pub fn feed_topic(recipient: &str, entity: Entity) -> String {
    format!("feed.{recipient}.{}.v1", entity.name())
}

fn notice_fields(entity: Entity) -> (Vec<String>, Vec<FieldTransform>, Vec<String>) {
    (
        vec![CARRIED.to_owned(), entity.key_field().to_owned()],
        Vec::new(),
        Vec::new(),
    )
}

fn whole_subject_reason(event: &Event) -> String {
    let code = match event {
        Event::Incident(r) => r.closure.as_ref(),
        Event::Case(r) => r.outcome.as_ref(),
        Event::Victim(_) => None,
    };
    let by = &event.envelope().source_org;
    match code {
        Some(c) => format!(
            "withdrawn by {by}: {}",
            c.label.as_deref().unwrap_or(c.code.as_str())
        ),
        None => format!("withdrawn by {by}"),
    }
}

/// A stand-in for an agreement that has ended, for the audit record of a retraction under it.
fn ended(r: &Receipt) -> Agreement {
    Agreement {
        id: r.agreement_id.clone(),
        title: String::new(),
        version: r.agreement_version.clone(),
        controllers: Vec::new(),
        recipient: crate::policy::Recipient {
            org: r.recipient.clone(),
            feeds: Vec::new(),
        },
        purposes: Vec::new(),
        lawful_basis: format!(
            "retraction of disclosures made under {} version {} (agreement since ended)",
            r.agreement_id, r.agreement_version
        ),
        valid_from: jiff::civil::Date::MIN,
        valid_to: None,
        review_date: jiff::civil::Date::MIN,
        ceiling: Classification::Official,
        clauses: Vec::new(),
        context: None,
        file: String::new(),
    }
}

fn internal(event: &Event, reason: &str) -> Error {
    Error::Projection {
        event_id: event.envelope().event_id.to_string(),
        reason: reason.to_owned(),
    }
}

/// A JSON value as CEL sees it. A null field is left out of its map, so `has(location.latitude)`
/// is false when the source sent no latitude (rather than true, with the comparison after it
/// then failing on a null).
fn cel_value(v: &Value) -> cel::Value {
    match v {
        Value::Null => cel::Value::Null,
        Value::Bool(b) => cel::Value::Bool(*b),
        Value::Number(n) => n
            .as_i64()
            .map(cel::Value::Int)
            .or_else(|| n.as_u64().map(cel::Value::UInt))
            .or_else(|| n.as_f64().map(cel::Value::Float))
            .unwrap_or(cel::Value::Null),
        Value::String(s) => cel::Value::String(Arc::new(s.clone())),
        Value::Array(items) => cel::Value::List(Arc::new(items.iter().map(cel_value).collect())),
        Value::Object(o) => cel::Value::Map(cel::objects::Map::from(
            o.iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k.clone(), cel_value(v)))
                .collect::<HashMap<String, cel::Value>>(),
        )),
    }
}

/// Picks the named top-level fields out of a record as it serialises, as JSON.
struct Top<'a> {
    vars: &'a [(String, bool)],
    values: Vec<(&'static str, Value)>,
}

impl serde::ser::SerializeStruct for &mut Top<'_> {
    type Ok = ();
    type Error = serde_json::Error;

    fn serialize_field<T: serde::Serialize + ?Sized>(
        &mut self,
        name: &'static str,
        value: &T,
    ) -> serde_json::Result<()> {
        if self.vars.iter().any(|(n, _)| n == name) {
            self.values.push((name, serde_json::to_value(value)?));
        }
        Ok(())
    }

    fn end(self) -> serde_json::Result<()> {
        Ok(())
    }
}

impl serde::Serializer for &mut Top<'_> {
    type Ok = ();
    type Error = serde_json::Error;
    type SerializeSeq = serde::ser::Impossible<(), serde_json::Error>;
    type SerializeTuple = serde::ser::Impossible<(), serde_json::Error>;
    type SerializeTupleStruct = serde::ser::Impossible<(), serde_json::Error>;
    type SerializeTupleVariant = serde::ser::Impossible<(), serde_json::Error>;
    type SerializeMap = serde::ser::Impossible<(), serde_json::Error>;
    type SerializeStruct = Self;
    type SerializeStructVariant = serde::ser::Impossible<(), serde_json::Error>;

    fn serialize_struct(self, _: &'static str, _: usize) -> serde_json::Result<Self> {
        Ok(self)
    }

    fn serialize_bool(self, _: bool) -> serde_json::Result<()> {
        Err(not_record())
    }
    fn serialize_i8(self, _: i8) -> serde_json::Result<()> {
        Err(not_record())
    }
    fn serialize_i16(self, _: i16) -> serde_json::Result<()> {
        Err(not_record())
    }
    fn serialize_i32(self, _: i32) -> serde_json::Result<()> {
        Err(not_record())
    }
    fn serialize_i64(self, _: i64) -> serde_json::Result<()> {
        Err(not_record())
    }
    fn serialize_u8(self, _: u8) -> serde_json::Result<()> {
        Err(not_record())
    }
    fn serialize_u16(self, _: u16) -> serde_json::Result<()> {
        Err(not_record())
    }
    fn serialize_u32(self, _: u32) -> serde_json::Result<()> {
        Err(not_record())
    }
    fn serialize_u64(self, _: u64) -> serde_json::Result<()> {
        Err(not_record())
    }
    fn serialize_f32(self, _: f32) -> serde_json::Result<()> {
        Err(not_record())
    }
    fn serialize_f64(self, _: f64) -> serde_json::Result<()> {
        Err(not_record())
    }
    fn serialize_char(self, _: char) -> serde_json::Result<()> {
        Err(not_record())
    }
    fn serialize_str(self, _: &str) -> serde_json::Result<()> {
        Err(not_record())
    }
    fn serialize_bytes(self, _: &[u8]) -> serde_json::Result<()> {
        Err(not_record())
    }
    fn serialize_none(self) -> serde_json::Result<()> {
        Err(not_record())
    }
    fn serialize_some<T: serde::Serialize + ?Sized>(self, _: &T) -> serde_json::Result<()> {
        Err(not_record())
    }
    fn serialize_unit(self) -> serde_json::Result<()> {
        Err(not_record())
    }
    fn serialize_unit_struct(self, _: &'static str) -> serde_json::Result<()> {
        Err(not_record())
    }
    fn serialize_unit_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
    ) -> serde_json::Result<()> {
        Err(not_record())
    }
    fn serialize_newtype_struct<T: serde::Serialize + ?Sized>(
        self,
        _: &'static str,
        _: &T,
    ) -> serde_json::Result<()> {
        Err(not_record())
    }
    fn serialize_newtype_variant<T: serde::Serialize + ?Sized>(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: &T,
    ) -> serde_json::Result<()> {
        Err(not_record())
    }
    fn serialize_seq(self, _: Option<usize>) -> serde_json::Result<Self::SerializeSeq> {
        Err(not_record())
    }
    fn serialize_tuple(self, _: usize) -> serde_json::Result<Self::SerializeTuple> {
        Err(not_record())
    }
    fn serialize_tuple_struct(
        self,
        _: &'static str,
        _: usize,
    ) -> serde_json::Result<Self::SerializeTupleStruct> {
        Err(not_record())
    }
    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> serde_json::Result<Self::SerializeTupleVariant> {
        Err(not_record())
    }
    fn serialize_map(self, _: Option<usize>) -> serde_json::Result<Self::SerializeMap> {
        Err(not_record())
    }
    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> serde_json::Result<Self::SerializeStructVariant> {
        Err(not_record())
    }
}

fn not_record() -> serde_json::Error {
    serde::ser::Error::custom("a record was expected")
}
