//! Checking an agreement's `[[context]]` clause.

use bluelight_avro::records::PersonRole;
use serde::Deserialize;
use toml::Spanned;

use crate::policy::{Clause, ContextClause, ContextPart, Entity, Transform};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawContext {
    id: String,
    about: Spanned<Vec<String>>,
    #[serde(default)]
    roles: Option<Spanned<Vec<String>>>,
    share: Spanned<Vec<String>>,
    #[serde(default)]
    identity: Option<Spanned<String>>,
}

/// The agreement's context clause, if it has a valid one; every problem goes to `count`.
pub(super) fn check(
    raw: &[Spanned<RawContext>],
    feeds: &[Entity],
    clauses: &[Clause],
    count: &mut impl FnMut(usize, String),
) -> Option<ContextClause> {
    let first = raw.first()?;
    for extra in &raw[1..] {
        count(
            extra.span().start,
            format!(
                "context {}: an agreement has one [[context]] clause; merge it into {}",
                extra.get_ref().id,
                first.get_ref().id
            ),
        );
    }
    let at = first.span().start;
    let c = first.get_ref();
    let before = std::cell::Cell::new(0usize);
    let mut fail = |at: usize, why: String| {
        before.set(before.get() + 1);
        count(at, format!("context {}: {why}", c.id));
    };
    if c.id.trim().is_empty() {
        fail(at, "id must not be empty".into());
    }
    if clauses.iter().any(|x| x.id == c.id) {
        fail(at, "has the id of a [[clause]]; give it its own".into());
    }
    if !feeds.contains(&Entity::Incident) {
        fail(
            at,
            "the recipient has no incident feed; a context block rides on incident records".into(),
        );
    } else if !clauses.iter().any(|x| x.entity == Entity::Incident) {
        fail(
            at,
            "no [[clause]] shares incident records, so no record could carry the block".into(),
        );
    }
    let (mut people, mut location) = (false, false);
    for a in c.about.get_ref() {
        match a.as_str() {
            "person" => people = true,
            "location" => location = true,
            other => fail(
                c.about.span().start,
                format!("about {other:?} is not \"person\" or \"location\""),
            ),
        }
    }
    if c.about.get_ref().is_empty() {
        fail(
            c.about.span().start,
            "about must name \"person\", \"location\" or both".into(),
        );
    }
    let mut roles = Vec::new();
    if let Some(list) = &c.roles {
        if !people {
            fail(
                list.span().start,
                "roles choose people, but about does not name \"person\"".into(),
            );
        }
        for r in list.get_ref() {
            match serde_json::from_value::<PersonRole>(serde_json::Value::String(r.clone())) {
                Ok(role) => roles.push(role),
                Err(_) => fail(
                    list.span().start,
                    format!(
                        "role {r:?} is not one of CALLER, VICTIM, WITNESS, SUSPECT, PERSON_OF_CONCERN"
                    ),
                ),
            }
        }
        if list.get_ref().is_empty() {
            fail(
                list.span().start,
                "roles is empty; leave it out to cover people in every role".into(),
            );
        }
    }
    roles.sort_unstable();
    roles.dedup();
    let mut share = Vec::new();
    for s in c.share.get_ref() {
        match ContextPart::parse(s) {
            Some(p) => share.push(p),
            None => fail(
                c.share.span().start,
                format!(
                    "share {s:?} is not one of {}",
                    ContextPart::ALL.map(ContextPart::name).join(", ")
                ),
            ),
        }
    }
    if c.share.get_ref().is_empty() {
        fail(
            c.share.span().start,
            "share names nothing; a clause must name what it shares".into(),
        );
    }
    share.sort_unstable();
    share.dedup();
    let identity = match c
        .identity
        .as_ref()
        .map(|s| (s.span().start, s.get_ref().as_str()))
    {
        None | Some((_, "pseudonymise")) => Transform::Pseudonymise,
        Some((at, "keep")) => {
            // Keeping references in the block would undo a clause that pseudonymises them.
            for x in clauses.iter().filter(|x| x.entity == Entity::Incident) {
                if let Some(rule) = x
                    .fields
                    .iter()
                    .find(|f| f.path == "people.person_ref" && f.transform != Transform::Keep)
                {
                    fail(
                        at,
                        format!(
                            "identity \"keep\" would send the person references clause {} sends {}",
                            x.id,
                            rule.transform.name()
                        ),
                    );
                }
            }
            Transform::Keep
        }
        Some((at, other)) => {
            fail(
                at,
                format!("identity {other:?} is not \"pseudonymise\" or \"keep\""),
            );
            Transform::Pseudonymise
        }
    };
    (before.get() == 0).then(|| ContextClause {
        id: c.id.clone(),
        people,
        roles,
        location,
        share,
        identity,
    })
}
