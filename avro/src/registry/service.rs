//! The registry's operations, with Confluent Schema Registry's semantics and error codes.
//!
//! Reads answer from memory; one that finds nothing first catches up with the log's end and looks
//! again, so an id another instance has just handed out is found here too. Writes take this
//! instance's write lock, catch up, append, and wait until their own record is applied.

use std::{fmt, str::FromStr};

use serde::Serialize;
use tracing::{debug, info};

use super::{
    Registry,
    compat::{self, CompatibilityLevel},
    metrics,
    store::{self, MAX_NUMBER, Parsed, Record, SchemaValue, Settle, State},
};
use crate::{Error, Result};

/// How often a registration is proposed before giving up. Each loss means another instance's
/// write landed first, so with a few instances racing, ten losses in a row are very unlikely.
const ATTEMPTS: u32 = 10;

/// A version in a request path: a number, or the latest (`latest` or `-1`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VersionSpec {
    Latest,
    Number(u32),
}

impl FromStr for VersionSpec {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        match s.trim() {
            "latest" | "-1" => Ok(VersionSpec::Latest),
            n => n
                .parse::<u32>()
                .ok()
                .filter(|v| (1..=MAX_NUMBER).contains(v))
                .map(VersionSpec::Number)
                .ok_or_else(|| Error::InvalidVersion(s.to_owned())),
        }
    }
}

impl fmt::Display for VersionSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            VersionSpec::Latest => f.write_str("latest"),
            VersionSpec::Number(n) => write!(f, "{n}"),
        }
    }
}

/// The outcome of a registration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Registered {
    pub id: u32,
    pub version: u32,
}

/// One version of a subject, as `GET /subjects/{s}/versions/{v}` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SubjectVersion {
    pub subject: String,
    pub version: u32,
    pub id: u32,
    pub schema: String,
}

fn parse(text: &str) -> Result<Parsed> {
    store::parse(text).map_err(Error::InvalidSchema)
}

fn not_found(e: &Error) -> bool {
    matches!(
        e,
        Error::SubjectNotFound(_)
            | Error::VersionNotFound { .. }
            | Error::SchemaIdNotFound(_)
            | Error::SchemaNotInSubject(_)
    )
}

/// Resolves `spec` to a version of `subject` that `include_deleted` lets the caller see.
fn resolve(state: &State, subject: &str, spec: VersionSpec, include_deleted: bool) -> Result<u32> {
    if !state.has_subject(subject, include_deleted) {
        return Err(Error::SubjectNotFound(subject.to_owned()));
    }
    let missing = || Error::VersionNotFound {
        subject: subject.to_owned(),
        version: spec.to_string(),
    };
    match spec {
        VersionSpec::Latest => state
            .versions(subject, include_deleted)
            .last()
            .copied()
            .ok_or_else(missing),
        VersionSpec::Number(v) => match state.slot(subject, v) {
            Some(slot) if include_deleted || !slot.deleted => Ok(v),
            _ => Err(missing()),
        },
    }
}

fn subject_version(state: &State, subject: &str, version: u32) -> Result<SubjectVersion> {
    let value = state
        .value_at(subject, version)
        .ok_or_else(|| Error::VersionNotFound {
            subject: subject.to_owned(),
            version: version.to_string(),
        })?;
    Ok(SubjectVersion {
        subject: value.subject,
        version,
        id: value.id,
        schema: value.schema,
    })
}

impl Registry {
    /// Runs `query` on the state; if it finds nothing, catches up with the log and runs it again.
    async fn read<T>(&self, query: impl Fn(&State) -> Result<T>) -> Result<T> {
        self.inner
            .log
            .wait_caught_up(self.inner.log.write_timeout())
            .await?;
        let first = query(&self.state());
        match first {
            Err(e) if not_found(&e) => match self.inner.log.sync().await {
                Ok(()) => query(&self.state()),
                Err(why) => {
                    // Without the broker, the answer from memory is still the best there is.
                    debug!(error = %why, "registry read could not catch up; answering from memory");
                    Err(e)
                }
            },
            other => other,
        }
    }

    async fn write(&self, record: &Record) -> Result<i64> {
        let offset = self.inner.log.append(record).await?;
        self.inner.log.wait_applied(offset).await?;
        Ok(offset)
    }

    /// Writes a SCHEMA record, reads it back, and settles its key (`State::settle`): if it lost,
    /// the key is made to end with what the state holds, so compaction cannot revive it.
    async fn write_schema(&self, value: SchemaValue) -> Result<()> {
        let mut written = value;
        // Each round answers a record of another instance landing in between; two suffice
        // unless instances keep rewriting one slot, and the last one to write settles it then.
        for _ in 0..3 {
            self.write(&Record::Schema {
                subject: written.subject.clone(),
                version: written.version,
                value: Some(written.clone()),
            })
            .await?;
            let settle = self.state().settle(&written);
            match settle {
                Settle::Done => return Ok(()),
                Settle::Restate(actual) | Settle::Withdraw(actual) => {
                    debug!(subject = %actual.subject, version = actual.version, id = actual.id,
                        "registry record lost; settling its key");
                    written = actual;
                }
            }
        }
        Ok(())
    }

    /// Registers `schema` under `subject` (`POST /subjects/{s}/versions`): the existing id and
    /// version if it is already live there, else a new version after a compatibility check.
    pub async fn register(&self, subject: &str, schema: &str) -> Result<Registered> {
        let parsed = parse(schema)?;
        let _one_writer = self.inner.writes.lock().await;
        self.inner.log.sync().await?;
        for attempt in 1..=ATTEMPTS {
            let (proposal, level, previous) = {
                let state = self.state();
                if let Some((version, id)) = state.find(subject, &parsed.key, false) {
                    return Ok(Registered { id, version });
                }
                let proposal = state.propose(subject, schema, &parsed).ok_or_else(|| {
                    Error::RegistryInternal(format!("{subject}: versions or ids exhausted"))
                })?;
                let level = state.level_for(subject, self.inner.default_compatibility);
                (proposal, level, state.live_schemas(subject))
            };
            let problems = compat::check(level, &parsed.schema, &previous);
            if !problems.is_empty() {
                return Err(Error::IncompatibleSchema {
                    subject: subject.to_owned(),
                    level: level.to_string(),
                    details: problems,
                });
            }
            self.write_schema(proposal.clone()).await?;
            let won = self.state().find(subject, &parsed.key, false);
            if let Some((version, id)) = won {
                info!(subject, version, id, "schema registered");
                return Ok(Registered { id, version });
            }
            metrics::record_retry();
            debug!(
                subject,
                attempt,
                version = proposal.version,
                id = proposal.id,
                "registration lost a race with another registry instance; retrying"
            );
            // A random pause, growing with each loss, so two instances stop meeting in lockstep.
            let jitter = uuid::Uuid::new_v4().as_u128() % 20;
            let pause = u64::from(attempt) * 5 + u64::try_from(jitter).unwrap_or(0);
            tokio::time::sleep(std::time::Duration::from_millis(pause)).await;
            self.inner.log.sync().await?;
        }
        Err(Error::RegistryConflict(format!(
            "registering under {subject} lost {ATTEMPTS} races with other registry instances"
        )))
    }

    /// Finds `schema` under `subject` (`POST /subjects/{s}`).
    pub async fn lookup(
        &self,
        subject: &str,
        schema: &str,
        include_deleted: bool,
    ) -> Result<SubjectVersion> {
        let parsed = parse(schema)?;
        self.read(|state| {
            if !state.has_subject(subject, include_deleted) {
                return Err(Error::SubjectNotFound(subject.to_owned()));
            }
            let (version, _) = state
                .find(subject, &parsed.key, include_deleted)
                .ok_or_else(|| Error::SchemaNotInSubject(subject.to_owned()))?;
            subject_version(state, subject, version)
        })
        .await
    }

    /// The schema text with this id (`GET /schemas/ids/{id}`); soft-deleted schemas keep theirs,
    /// so old data stays readable.
    pub async fn schema(&self, id: u32) -> Result<String> {
        self.read(|state| {
            state
                .schema(id)
                .map(|s| s.text.to_string())
                .ok_or(Error::SchemaIdNotFound(id))
        })
        .await
    }

    /// Every (subject, version) using the id (`GET /schemas/ids/{id}/versions`).
    pub async fn schema_uses(&self, id: u32, include_deleted: bool) -> Result<Vec<(String, u32)>> {
        self.read(|state| {
            state.schema(id).ok_or(Error::SchemaIdNotFound(id))?;
            Ok(state.uses_of(id, include_deleted))
        })
        .await
    }

    /// Subjects with a live version (or any version, with `include_deleted`), sorted.
    pub async fn subjects(&self, include_deleted: bool) -> Result<Vec<String>> {
        self.read(|state| Ok(state.subjects(include_deleted))).await
    }

    /// A subject's versions, oldest first.
    pub async fn versions(&self, subject: &str, include_deleted: bool) -> Result<Vec<u32>> {
        self.read(|state| {
            let versions = state.versions(subject, include_deleted);
            if versions.is_empty() {
                return Err(Error::SubjectNotFound(subject.to_owned()));
            }
            Ok(versions)
        })
        .await
    }

    /// One version of a subject.
    pub async fn version(
        &self,
        subject: &str,
        spec: VersionSpec,
        include_deleted: bool,
    ) -> Result<SubjectVersion> {
        self.read(|state| {
            let version = resolve(state, subject, spec, include_deleted)?;
            subject_version(state, subject, version)
        })
        .await
    }

    /// Deletes a subject (`DELETE /subjects/{s}`): soft (versions hidden, ids kept) or, once soft
    /// deleted, permanently. Returns the versions deleted.
    pub async fn delete_subject(&self, subject: &str, permanent: bool) -> Result<Vec<u32>> {
        let _one_writer = self.inner.writes.lock().await;
        self.inner.log.sync().await?;
        let (all, live, has_level) = {
            let state = self.state();
            (
                state.versions(subject, true),
                state.versions(subject, false),
                state.subject_level(subject).is_some(),
            )
        };
        let Some(&max) = all.last() else {
            return Err(Error::SubjectNotFound(subject.to_owned()));
        };
        if permanent {
            if !live.is_empty() {
                return Err(Error::SubjectNotSoftDeleted(subject.to_owned()));
            }
            for &version in &all {
                self.write(&Record::Schema {
                    subject: subject.to_owned(),
                    version,
                    value: None,
                })
                .await?;
            }
            info!(subject, versions = ?all, "subject deleted permanently");
            return Ok(all);
        }
        if live.is_empty() {
            return Err(Error::SubjectSoftDeleted(subject.to_owned()));
        }
        self.write(&Record::DeleteSubject {
            subject: subject.to_owned(),
            up_to: Some(max),
        })
        .await?;
        if has_level {
            // Confluent drops a deleted subject's own compatibility level too.
            self.write(&Record::Config {
                subject: Some(subject.to_owned()),
                level: None,
            })
            .await?;
        }
        info!(subject, versions = ?live, "subject soft-deleted");
        Ok(live)
    }

    /// Deletes one version (`DELETE /subjects/{s}/versions/{v}`): soft, or permanently once soft
    /// deleted. Returns the version deleted.
    pub async fn delete_version(
        &self,
        subject: &str,
        spec: VersionSpec,
        permanent: bool,
    ) -> Result<u32> {
        let _one_writer = self.inner.writes.lock().await;
        self.inner.log.sync().await?;
        // The slot's new value: a copy marked deleted (soft), or none (a tombstone).
        let (version, new_value) = {
            let state = self.state();
            // A numbered version is found even when soft-deleted, to answer 40406 rather than
            // 40402; `latest` is the latest live one unless deleting permanently.
            let include_deleted = permanent || matches!(spec, VersionSpec::Number(_));
            let version = resolve(&state, subject, spec, include_deleted)?;
            let value = state
                .value_at(subject, version)
                .ok_or_else(|| Error::VersionNotFound {
                    subject: subject.to_owned(),
                    version: version.to_string(),
                })?;
            match (permanent, value.deleted) {
                (false, true) => {
                    return Err(Error::VersionSoftDeleted {
                        subject: subject.to_owned(),
                        version,
                    });
                }
                (true, false) => {
                    return Err(Error::VersionNotSoftDeleted {
                        subject: subject.to_owned(),
                        version,
                    });
                }
                (true, true) => (version, None),
                (false, false) => (
                    version,
                    Some(SchemaValue {
                        deleted: true,
                        ..value
                    }),
                ),
            }
        };
        match new_value {
            Some(value) => self.write_schema(value).await?,
            None => {
                self.write(&Record::Schema {
                    subject: subject.to_owned(),
                    version,
                    value: None,
                })
                .await?;
            }
        }
        info!(subject, version, permanent, "version deleted");
        Ok(version)
    }

    /// The level of `subject` (`GET /config/{s}`), or the global one (`subject: None`). A subject
    /// without its own level is 40408 unless `default_to_global`.
    pub async fn compatibility(
        &self,
        subject: Option<&str>,
        default_to_global: bool,
    ) -> Result<CompatibilityLevel> {
        let default = self.inner.default_compatibility;
        self.read(|state| {
            let global = state.global_level().unwrap_or(default);
            match subject {
                None => Ok(global),
                Some(s) => match state.subject_level(s) {
                    Some(level) => Ok(level),
                    None if default_to_global => Ok(global),
                    None => Err(Error::SubjectCompatibilityNotConfigured(s.to_owned())),
                },
            }
        })
        .await
    }

    /// Sets the level of `subject`, or the global one (`PUT /config[/{s}]`).
    pub async fn set_compatibility(
        &self,
        subject: Option<&str>,
        level: CompatibilityLevel,
    ) -> Result<()> {
        let _one_writer = self.inner.writes.lock().await;
        self.write(&Record::Config {
            subject: subject.map(str::to_owned),
            level: Some(level),
        })
        .await?;
        info!(subject = subject.unwrap_or("(global)"), %level, "compatibility set");
        Ok(())
    }

    /// Removes the level of `subject`, or resets the global one to the default
    /// (`DELETE /config[/{s}]`). Returns the level it had.
    pub async fn delete_compatibility(&self, subject: Option<&str>) -> Result<CompatibilityLevel> {
        let _one_writer = self.inner.writes.lock().await;
        self.inner.log.sync().await?;
        let previous = {
            let state = self.state();
            match subject {
                None => state
                    .global_level()
                    .unwrap_or(self.inner.default_compatibility),
                Some(s) => state
                    .subject_level(s)
                    .ok_or_else(|| Error::SubjectCompatibilityNotConfigured(s.to_owned()))?,
            }
        };
        self.write(&Record::Config {
            subject: subject.map(str::to_owned),
            level: None,
        })
        .await?;
        Ok(previous)
    }

    /// Why `schema` may not be registered under `subject` (`POST /compatibility/...`); empty when
    /// it may. With a version, it is compared with that version only (under the subject's level,
    /// transitivity aside); without, as a registration would be. Against `latest` of a subject
    /// without versions, anything is compatible.
    pub async fn check_compatibility(
        &self,
        subject: &str,
        version: Option<VersionSpec>,
        schema: &str,
    ) -> Result<Vec<String>> {
        let parsed = parse(schema)?;
        let default = self.inner.default_compatibility;
        let (level, against) = self
            .read(|state| {
                let level = state.level_for(subject, default);
                let against = match version {
                    None => state.live_schemas(subject),
                    Some(VersionSpec::Latest) if !state.has_subject(subject, false) => Vec::new(),
                    Some(spec) => {
                        let version = resolve(state, subject, spec, false)?;
                        state
                            .live_schemas(subject)
                            .into_iter()
                            .filter(|(v, _)| *v == version)
                            .collect()
                    }
                };
                Ok((level, against))
            })
            .await?;
        Ok(match version {
            None => compat::check(level, &parsed.schema, &against),
            Some(_) => against
                .iter()
                .flat_map(|(v, old)| compat::check_one(level, &parsed.schema, *v, old))
                .collect(),
        })
    }
}
