//! `bluelight agreements`: the tools an information-governance officer uses on agreement files.

use std::{path::PathBuf, process::ExitCode};

use bluelight_consumers::policy;
use clap::{Args, Subcommand};

#[derive(Debug, Args)]
pub struct AgreementsCommand {
    #[command(subcommand)]
    action: Action,
}

#[derive(Debug, Subcommand)]
enum Action {
    /// Check every agreement in a directory: field paths against the canonical schemas, CEL
    /// conditions (parsed and tried on a sample record), dates, expiry and overlaps. Lists every
    /// problem with its file and line; exits 1 if there is any.
    Check {
        /// Directory of `*.toml` agreements.
        #[arg(
            long,
            env = "BLUELIGHT_AGREEMENTS",
            default_value = "agreements",
            value_name = "DIR"
        )]
        dir: PathBuf,
    },
}

impl AgreementsCommand {
    pub async fn run(self) -> anyhow::Result<ExitCode> {
        match self.action {
            Action::Check { dir } => {
                let today = jiff::Zoned::now().date();
                match policy::load_dir(&dir, today) {
                    Ok(p) => {
                        println!(
                            "{:<36}  {:<24}  {:<14}  {:>7}  {:<24}  IN FORCE",
                            "AGREEMENT", "RECIPIENT", "FEEDS", "CLAUSES", "VALID"
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
                            println!(
                                "{:<36}  {:<24}  {:<14}  {:>7}  {:<24}  {}",
                                a.id,
                                a.recipient.org,
                                feeds.join(","),
                                a.clauses.len(),
                                valid,
                                if a.in_force(today) { "yes" } else { "not yet" }
                            );
                        }
                        println!(
                            "\n{}: {} agreements, all valid",
                            dir.display(),
                            p.agreements.len()
                        );
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
