//! A clause compiled once into a tree that projects a record in one pass, and the field lists its
//! audit records quote.
//!
//! The tree mirrors the record: a shared field is kept or transformed, a record shared in part
//! descends into the named fields, and every field the tree does not name is left out (default
//! deny; the typed record reads it back as null or empty). Lists apply their node to each item.

use std::collections::BTreeMap;

use bluelight_avro::records::FieldTransform;
use serde_json::{Map, Value};

use super::transform::{self, Pseudonymiser};
use crate::policy::{Clause, Entity, Generalisation, Transform, fields::Field};

/// Travels whole with every feed record: which event it is, when, from whom, its marking and
/// the corrections it makes. A clause may still generalise its times.
pub const CARRIED: &str = "envelope";

/// The envelope field naming the disclosure a feed record is sent under.
pub const DISCLOSURE: &str = "disclosure";

#[derive(Debug, Clone)]
pub(super) enum Node {
    Keep,
    Apply(Transform),
    Part(BTreeMap<String, Node>),
    /// A required text withheld: sent empty.
    Blank,
    /// The envelope's `disclosure`: the reference of the disclosure the copy is sent under,
    /// whatever the source's record held.
    Disclosure,
    /// An incident's `context`: the block the agreement's `[[context]]` clause sends with this
    /// copy, or nothing; whatever the source's record held is never carried.
    Context,
}

/// The incident field a context block goes in.
pub const CONTEXT: &str = "context";

/// One clause, ready to apply.
#[derive(Debug, Clone)]
pub struct Plan {
    root: BTreeMap<String, Node>,
    /// Field paths sent as they are.
    pub disclosed: Vec<String>,
    /// Field paths sent changed, with how.
    pub transformed: Vec<FieldTransform>,
    /// Field paths the recipient does not get: the largest unshared ones (a record withheld
    /// whole is listed once, not field by field).
    pub withheld: Vec<String>,
}

impl Plan {
    pub fn new(entity: Entity, clause: &Clause) -> Self {
        let fields = entity.fields();
        let mut root = BTreeMap::new();
        root.insert(CARRIED.to_owned(), carried(&fields));
        let mut rules: Vec<_> = clause.fields.iter().collect();
        // Parents before children, so a child's transform refines a parent shared whole.
        rules.sort_by(|a, b| a.path.cmp(&b.path));
        for rule in &rules {
            let node = match rule.transform {
                Transform::Keep => Node::Keep,
                t => Node::Apply(t),
            };
            insert(&mut root, "", &rule.path, node, &fields);
        }
        // The envelope always travels in part, so its `disclosure` can be set (a clause sharing
        // `envelope` whole gets every other field of it).
        let envelope = root
            .entry(CARRIED.to_owned())
            .or_insert_with(|| Node::Part(BTreeMap::new()));
        if matches!(envelope, Node::Keep) {
            *envelope = Node::Part(
                children(CARRIED, &fields)
                    .map(|c| (c, Node::Keep))
                    .collect(),
            );
        }
        if let Node::Part(map) = envelope {
            map.insert(DISCLOSURE.to_owned(), Node::Disclosure);
        }
        if entity == Entity::Incident {
            root.insert(CONTEXT.to_owned(), Node::Context);
        }
        let mut disclosed = vec![CARRIED.to_owned()];
        // `envelope` is listed as disclosed: what of it travels is described above `carried`.
        let mut transformed = Vec::new();
        for rule in &rules {
            match rule.transform {
                Transform::Keep => disclosed.push(rule.path.clone()),
                t => transformed.push(FieldTransform {
                    field: rule.path.clone(),
                    transform: t.name().to_owned(),
                }),
            }
        }
        let mut withheld = Vec::new();
        unshared(&root, "", &fields, &mut withheld);
        Plan {
            root,
            disclosed,
            transformed,
            withheld,
        }
    }

    /// Writes the recipient's copy of `record` as Avro (the body, without the wire-format
    /// header): the fast path, equal to [`Plan::apply`] read back and encoded.
    pub(super) fn write<T: serde::Serialize>(
        &self,
        record: &T,
        ctx: &super::write::Ctx<'_>,
        out: &mut Vec<u8>,
    ) -> Result<(), String> {
        super::write::record(record, &self.root, ctx, out).map_err(|e| e.0)
    }

    /// The key the recipient knows a subject by: the key field as this plan sends it.
    pub fn key(&self, key_field: &str, key: &str, p: &Pseudonymiser, at_ms: i64) -> Option<String> {
        let node = self.root.get(key_field)?;
        match one(node, key_field, &Value::String(key.to_owned()), p, at_ms) {
            Value::String(s) => Some(s),
            _ => None,
        }
    }

    /// The recipient's copy of a record (as JSON from the typed record); `at_ms` is when the event
    /// occurred, for age bands.
    pub fn apply(&self, record: &Value, p: &Pseudonymiser, at_ms: i64) -> Value {
        match record {
            Value::Object(o) => Value::Object(part(&self.root, o, p, at_ms)),
            _ => Value::Null,
        }
    }
}

/// The envelope as it travels by default: all of it but the links between events
/// (`correlation_id`, `causation_id`: they would let recipients of different agreements join
/// their records) and the free-text reasons of corrections and withdrawals. A clause may name any
/// of them.
fn carried(fields: &BTreeMap<String, Field>) -> Node {
    let mut map: BTreeMap<String, Node> =
        children(CARRIED, fields).map(|c| (c, Node::Keep)).collect();
    map.remove("correlation_id");
    map.remove("causation_id");
    for link in ["supersedes", "retracts"] {
        let mut part = BTreeMap::new();
        part.insert("event_id".to_owned(), Node::Keep);
        part.insert("reason".to_owned(), Node::Blank);
        map.insert(link.to_owned(), Node::Part(part));
    }
    Node::Part(map)
}

fn insert(
    map: &mut BTreeMap<String, Node>,
    prefix: &str,
    path: &str,
    node: Node,
    fields: &BTreeMap<String, Field>,
) {
    let (head, rest) = match path.split_once('.') {
        Some((h, r)) => (h, Some(r)),
        None => (path, None),
    };
    let full = if prefix.is_empty() {
        head.to_owned()
    } else {
        format!("{prefix}.{head}")
    };
    match rest {
        None => {
            map.insert(head.to_owned(), node);
        }
        Some(rest) => {
            let entry = map
                .entry(head.to_owned())
                .or_insert_with(|| Node::Part(BTreeMap::new()));
            if matches!(entry, Node::Keep) {
                // Shared whole and refined below: spell out its fields, all kept.
                *entry = Node::Part(children(&full, fields).map(|c| (c, Node::Keep)).collect());
            }
            if let Node::Part(inner) = entry {
                insert(inner, &full, rest, node, fields);
            }
        }
    }
}

fn children<'a>(
    parent: &'a str,
    fields: &'a BTreeMap<String, Field>,
) -> impl Iterator<Item = String> + 'a {
    let prefix = format!("{parent}.");
    fields
        .keys()
        .filter_map(move |k| k.strip_prefix(&prefix).map(str::to_owned))
        .filter(|c| !c.contains('.'))
}

fn unshared(
    map: &BTreeMap<String, Node>,
    prefix: &str,
    fields: &BTreeMap<String, Field>,
    out: &mut Vec<String>,
) {
    let names: Vec<String> = if prefix.is_empty() {
        fields
            .keys()
            .filter(|k| !k.contains('.'))
            .cloned()
            .collect()
    } else {
        children(prefix, fields).collect()
    };
    for name in names {
        let full = if prefix.is_empty() {
            name.clone()
        } else {
            format!("{prefix}.{name}")
        };
        match map.get(&name) {
            None if name == "age_band" => {}
            None => out.push(full),
            Some(Node::Part(inner)) => unshared(inner, &full, fields, out),
            Some(Node::Blank | Node::Context) => out.push(full),
            Some(_) => {}
        }
    }
}

fn part(
    nodes: &BTreeMap<String, Node>,
    o: &Map<String, Value>,
    p: &Pseudonymiser,
    at_ms: i64,
) -> Map<String, Value> {
    let mut out = Map::new();
    for (name, node) in nodes {
        let Some(v) = o.get(name) else { continue };
        if let Node::Apply(Transform::Generalise(Generalisation::AgeBand)) = node {
            let band = v
                .as_i64()
                .and_then(|days| transform::age_band(days, at_ms))
                .map_or(Value::Null, Value::String);
            out.insert("age_band".to_owned(), band);
            continue;
        }
        out.insert(name.clone(), one(node, name, v, p, at_ms));
    }
    out
}

fn one(node: &Node, name: &str, v: &Value, p: &Pseudonymiser, at_ms: i64) -> Value {
    match (node, v) {
        (_, Value::Null) | (Node::Context, _) => Value::Null,
        (Node::Blank, _) => Value::String(String::new()),
        (Node::Keep | Node::Disclosure, v) => v.clone(),
        (Node::Apply(t), Value::Array(items)) => Value::Array(
            items
                .iter()
                .map(|i| one(&Node::Apply(*t), name, i, p, at_ms))
                .collect(),
        ),
        (Node::Apply(Transform::Keep), v) => v.clone(),
        (Node::Apply(Transform::Redact), v) => transform::redact(v),
        (Node::Apply(Transform::Pseudonymise), v) => transform::pseudonymise(p, v),
        (Node::Apply(Transform::Generalise(g)), v) => transform::generalise(*g, name, v),
        (Node::Part(inner), Value::Object(o)) => Value::Object(part(inner, o, p, at_ms)),
        (Node::Part(_), Value::Array(items)) => {
            Value::Array(items.iter().map(|i| one(node, name, i, p, at_ms)).collect())
        }
        (Node::Part(_), _) => Value::Null,
    }
}
