//! `bluelight agreements`: the tools an information-governance officer uses on agreement files.

use std::{
    path::{Path, PathBuf},
    process::ExitCode,
    sync::Arc,
};

use anyhow::{Context, bail};
use bluelight_avro::records::Timestamp;
use bluelight_consumers::{
    policy::{self, Entity},
    project::{Event, Projector, Verdict},
};
use clap::{Args, Subcommand};
use serde_json::Value;

/// Writes a line to the report being built; the report goes to stdout in one write at the end,
/// so `| head` ends it quietly instead of failing mid-way.
macro_rules! say {
    ($out:ident) => {
        $out.push('\n')
    };
    ($out:ident, $($arg:tt)*) => {{
        use std::fmt::Write as _;
        let _ = writeln!($out, $($arg)*);
    }};
}

/// Prints a finished report; a closed pipe (the reader stopped early) is not an error.
fn emit(out: &str) {
    use std::io::Write as _;
    let _ = std::io::stdout().lock().write_all(out.as_bytes());
}

#[derive(Debug, Args)]
pub struct AgreementsCommand {
    #[command(subcommand)]
    action: Action,
}

#[derive(Debug, Args)]
struct Dir {
    /// Directory of `*.toml` agreements.
    #[arg(
        long = "dir",
        env = "BLUELIGHT_AGREEMENTS",
        default_value = "agreements",
        value_name = "DIR"
    )]
    path: PathBuf,
}

#[derive(Debug, Subcommand)]
enum Action {
    /// Check every agreement in a directory: field paths against the canonical schemas, CEL
    /// conditions (parsed and tried on a sample record), dates, expiry and overlaps. Lists every
    /// problem with its file and line; exits 1 if there is any.
    Check {
        #[command(flatten)]
        dir: Dir,
    },
    /// Show what one recipient would get of one event, and why: which agreement and clause apply
    /// (or why none does), each field that goes out and how it was transformed (with the value
    /// sent), the fields withheld, and the record as the recipient receives it.
    ///
    /// The event is a canonical record as JSON (the shape `bluelight ingest` publishes, e.g. from
    /// producers/tests/golden/); its entity is read from its key field (incident_id, case_id or
    /// victim_ref). Pseudonyms use --pseudonym-key-file when given, else a fixed demonstration key:
    /// they show the shape, not what the live service would send.
    Explain {
        #[command(flatten)]
        dir: Dir,
        /// The canonical event, as JSON.
        #[arg(long, value_name = "FILE")]
        event: PathBuf,
        /// The recipient organisation, as in the agreements' `recipient.org`.
        #[arg(long, value_name = "ORG")]
        recipient: String,
        /// Decide as on this day (YYYY-MM-DD) instead of today: agreements in force then apply.
        #[arg(long, value_name = "DATE")]
        on: Option<jiff::civil::Date>,
        /// The pseudonym key file the projector uses.
        #[arg(long, env = "BLUELIGHT_PSEUDONYM_KEY_FILE", value_name = "FILE")]
        pseudonym_key_file: Option<PathBuf>,
    },
}

impl AgreementsCommand {
    pub async fn run(self) -> anyhow::Result<ExitCode> {
        match self.action {
            Action::Explain {
                dir,
                event,
                recipient,
                on,
                pseudonym_key_file,
            } => explain(
                &dir.path,
                &event,
                &recipient,
                on,
                pseudonym_key_file.as_deref(),
            ),
            Action::Check {
                dir: Dir { path: dir },
            } => {
                let today = jiff::Zoned::now().date();
                match policy::load_dir(&dir, today) {
                    Ok(p) => {
                        let mut out = String::new();
                        say!(
                            out,
                            "{:<36}  {:<24}  {:<14}  {:>7}  {:<24}  IN FORCE",
                            "AGREEMENT",
                            "RECIPIENT",
                            "FEEDS",
                            "CLAUSES",
                            "VALID"
                        );
                        for a in &p.agreements {
                            let feeds: Vec<&str> =
                                a.recipient.feeds.iter().map(|f| f.name()).collect();
                            let valid = format!(
                                "{} to {}",
                                a.valid_from,
                                a.valid_to
                                    .map_or_else(|| "open".to_owned(), |d| d.to_string())
                            );
                            say!(
                                out,
                                "{:<36}  {:<24}  {:<14}  {:>7}  {:<24}  {}",
                                a.id,
                                a.recipient.org,
                                feeds.join(","),
                                a.clauses.len(),
                                valid,
                                if a.in_force(today) { "yes" } else { "not yet" }
                            );
                        }
                        say!(
                            out,
                            "\n{}: {} agreements, all valid",
                            dir.display(),
                            p.agreements.len()
                        );
                        emit(&out);
                        Ok(ExitCode::SUCCESS)
                    }
                    Err(e) => {
                        eprintln!("{e}");
                        Ok(ExitCode::FAILURE)
                    }
                }
            }
        }
    }
}

fn explain(
    dir: &Path,
    file: &Path,
    recipient: &str,
    on: Option<jiff::civil::Date>,
    key_file: Option<&Path>,
) -> anyhow::Result<ExitCode> {
    let day = on.unwrap_or_else(|| jiff::Zoned::now().date());
    let policy = match policy::load_dir(dir, day) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("{e}");
            return Ok(ExitCode::FAILURE);
        }
    };
    let text =
        std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    let json: Value =
        serde_json::from_str(&text).with_context(|| format!("{} is not JSON", file.display()))?;
    let entity = [Entity::Incident, Entity::Case, Entity::Victim]
        .into_iter()
        .find(|e| json.get(e.key_field()).is_some())
        .with_context(|| {
            format!(
                "{} has none of incident_id, case_id, victim_ref: not a canonical record",
                file.display()
            )
        })?;
    let event = Event::from_json(entity, json.clone()).with_context(|| {
        format!(
            "{} is not a canonical {} record",
            file.display(),
            entity.name()
        )
    })?;
    let secret = match key_file {
        Some(f) => std::fs::read(f).with_context(|| format!("reading {}", f.display()))?,
        None => b"bluelight explain demonstration key, not the live one".to_vec(),
    };
    let mine: Vec<usize> = policy
        .agreements
        .iter()
        .enumerate()
        .filter(|(_, a)| a.recipient.org == recipient)
        .map(|(i, _)| i)
        .collect();
    if mine.is_empty() {
        let known: std::collections::BTreeSet<&str> = policy
            .agreements
            .iter()
            .map(|a| a.recipient.org.as_str())
            .collect();
        bail!(
            "no agreement in {} names recipient {recipient:?}, so it gets nothing (default deny); recipients: {}",
            dir.display(),
            known.into_iter().collect::<Vec<_>>().join(", ")
        );
    }
    let projector = Projector::new(Arc::new(policy), &secret, "bluelight-explain");
    let mut out = String::new();
    let env = event.envelope();
    say!(
        out,
        "Event {} {:?} from {} ({:?}), {} {}, decided as on {day}",
        env.event_id,
        env.event_type,
        env.source_org,
        env.marking.classification,
        entity.name(),
        event.key()
    );
    if key_file.is_none() {
        say!(
            out,
            "(pseudonyms below use a demonstration key, not the live one)"
        );
    }
    let scope = projector.scope(entity, &json);
    for i in mine {
        let a = &projector.policy().agreements[i];
        say!(
            out,
            "\n{} version {} ({})\n  {}",
            a.id,
            a.version,
            a.file,
            a.title
        );
        match projector.decide(i, &event, &scope, day) {
            Err(why) => {
                say!(
                    out,
                    "  SHARES NOTHING: {why} (a condition that fails counts as not met)"
                )
            }
            Ok(Verdict::NotInForce) => say!(
                out,
                "  SHARES NOTHING: not in force on {day} (valid {} to {})",
                a.valid_from,
                a.valid_to
                    .map_or_else(|| "open".to_owned(), |d| d.to_string())
            ),
            Ok(Verdict::NotController) => say!(
                out,
                "  SHARES NOTHING: the event comes from {}, not one of the controllers ({})",
                env.source_org,
                a.controllers.join(", ")
            ),
            Ok(Verdict::NoFeed) => say!(
                out,
                "  SHARES NOTHING: the recipient has no {} feed",
                entity.name()
            ),
            Ok(Verdict::NoClause(why)) => {
                say!(out, "  SHARES NOTHING: no clause matches");
                for (c, w) in why {
                    say!(out, "    clause {c}: {w}");
                }
            }
            Ok(Verdict::AboveCeiling { clause }) => say!(
                out,
                "  SHARES NOTHING: clause {} matches, but the record is {:?}, above the agreement's ceiling {:?}",
                a.clauses[clause].id,
                env.marking.classification,
                a.ceiling
            ),
            Ok(Verdict::Shares { clause }) => {
                let c = &a.clauses[clause];
                let feed = projector.disclose(i, clause, &event, &json, Timestamp::now())?;
                let sent = feed.record.to_json()?;
                say!(out, "  SHARES under clause {} to {}", c.id, feed.topic);
                say!(
                    out,
                    "  purposes: {}; lawful basis: {}",
                    a.purposes.join(", "),
                    a.lawful_basis
                );
                if let Some((cond, _)) = &c.condition {
                    say!(out, "  condition {cond:?} is true");
                }
                say!(out, "\n  {:<36} {:<28} VALUE SENT", "FIELD", "HOW");
                say!(
                    out,
                    "  {:<36} {:<28} event id, type, times, source, marking",
                    "envelope",
                    "always (provenance, marking)"
                );
                for rule in &c.fields {
                    let value = at(&sent, &rule.path);
                    let shown = if rule.path.ends_with("date_of_birth")
                        && rule.transform.name() == "generalise:age-band"
                    {
                        at(&sent, &rule.path.replace("date_of_birth", "age_band"))
                    } else {
                        value
                    };
                    say!(
                        out,
                        "  {:<36} {:<28} {}",
                        rule.path,
                        rule.transform.name(),
                        clip(&shown)
                    );
                }
                if let Some(cc) = &a.context {
                    let mut about = Vec::new();
                    if cc.people {
                        about.push(if cc.roles.is_empty() {
                            "people".to_owned()
                        } else {
                            format!("people as {:?}", cc.roles)
                        });
                    }
                    if cc.location {
                        about.push("the place".to_owned());
                    }
                    say!(
                        out,
                        "\n  CONTEXT clause {}: incident records also carry a context block about {}, sharing {} (references {}), when earlier contacts are known; explain reads no context state, so none is shown here",
                        cc.id,
                        about.join(" and "),
                        cc.share
                            .iter()
                            .map(|p| p.name())
                            .collect::<Vec<_>>()
                            .join(", "),
                        if cc.identity.name() == "keep" {
                            "kept as held"
                        } else {
                            "pseudonymised"
                        }
                    );
                }
                say!(out, "\n  WITHHELD (not named by the clause; default deny):");
                for w in &feed.audit.fields_withheld {
                    say!(out, "    {w}");
                }
                say!(out, "\n  The record as {recipient} receives it:");
                say!(out, "{}", serde_json::to_string_pretty(&sent)?);
            }
        }
    }
    emit(&out);
    Ok(ExitCode::SUCCESS)
}

/// The value(s) at a dotted path; lists give a list of their items' values.
fn at(v: &Value, path: &str) -> Value {
    let mut cur = vec![v.clone()];
    for part in path.split('.') {
        let mut next = Vec::new();
        for c in cur {
            match c {
                Value::Array(items) => next.extend(
                    items
                        .into_iter()
                        .map(|i| i.get(part).cloned().unwrap_or(Value::Null)),
                ),
                other => next.push(other.get(part).cloned().unwrap_or(Value::Null)),
            }
        }
        cur = next;
    }
    if cur.len() == 1 {
        cur.remove(0)
    } else {
        Value::Array(cur)
    }
}

fn clip(v: &Value) -> String {
    let s = v.to_string();
    if s.chars().count() > 60 {
        format!("{}...", s.chars().take(57).collect::<String>())
    } else {
        s
    }
}
