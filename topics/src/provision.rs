//! Comparing the catalogue with a live cluster, and creating what is missing.
//!
//! Provisioning is additive by design: a topic holds evidence (audit logs) and ordering guarantees
//! (keys hashed to partitions), so `apply` creates missing topics and *reports* every difference
//! (partition count, replication, settings) for a person to decide on. Running it twice changes
//! nothing the second time.

use std::{
    collections::{BTreeMap, BTreeSet},
    fmt,
    time::Duration,
};

use rdkafka::{
    admin::{AdminClient, AdminOptions, NewTopic, ResourceSpecifier, TopicReplication},
    client::DefaultClientContext,
    types::RDKafkaErrorCode,
};

use crate::{Catalogue, Error, KafkaArgs, Result, TopicSpec, catalogue::CleanupPolicy};

/// What the broker has for one topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observed {
    pub partitions: i32,
    pub replication_factor: i16,
    /// Only the settings the catalogue manages for this topic.
    pub configs: BTreeMap<String, String>,
}

/// One difference between the catalogue and the broker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Drift {
    pub setting: String,
    pub catalogue: String,
    pub broker: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TopicStatus {
    Missing,
    InSync,
    Drift(Vec<Drift>),
    /// Created by this run.
    Created,
}

#[derive(Debug, Clone)]
pub struct PlannedTopic {
    pub spec: TopicSpec,
    pub status: TopicStatus,
    pub observed: Option<Observed>,
}

/// The catalogue set against the cluster.
#[derive(Debug, Clone)]
pub struct Plan {
    pub topics: Vec<PlannedTopic>,
    /// Topics on the broker that the catalogue does not list (Kafka's own `__*` topics left out).
    pub unmanaged: Vec<String>,
    pub brokers: usize,
}

impl Plan {
    pub fn count(&self, pred: impl Fn(&TopicStatus) -> bool) -> usize {
        self.topics.iter().filter(|t| pred(&t.status)).count()
    }

    pub fn has_drift(&self) -> bool {
        self.count(|s| matches!(s, TopicStatus::Drift(_))) > 0
    }
}

/// Talks to the cluster's admin API.
pub struct Provisioner {
    admin: AdminClient<DefaultClientContext>,
    brokers: String,
    timeout: Duration,
}

impl fmt::Debug for Provisioner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Provisioner")
            .field("brokers", &self.brokers)
            .finish_non_exhaustive()
    }
}

impl Provisioner {
    pub fn connect(kafka: &KafkaArgs, timeout: Duration) -> Result<Self> {
        let admin = kafka
            .client_config("topics")?
            .create()
            .map_err(Error::kafka("admin client creation"))?;
        Ok(Provisioner {
            admin,
            brokers: kafka.brokers.clone(),
            timeout,
        })
    }

    /// Waits (at most the admin timeout) until every topic in `names` is in the metadata with
    /// its partitions led.
    fn wait_visible<'a>(&self, names: impl Iterator<Item = &'a String>) {
        let names: Vec<&String> = names.collect();
        if names.is_empty() {
            return;
        }
        let deadline = std::time::Instant::now() + self.timeout;
        while std::time::Instant::now() < deadline {
            let visible = self
                .admin
                .inner()
                .fetch_metadata(None, self.timeout)
                .is_ok_and(|md| {
                    names.iter().all(|n| {
                        md.topics().iter().any(|t| {
                            t.name() == n.as_str()
                                && t.error().is_none()
                                && !t.partitions().is_empty()
                                && t.partitions()
                                    .iter()
                                    .all(|p| p.error().is_none() && p.leader() >= 0)
                        })
                    })
                });
            if visible {
                return;
            }
            // Admin work at start-up or from the CLI, not a hot path: a short blocking pause.
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        tracing::warn!(topics = ?names, "created topics are not in the metadata yet");
    }

    /// Reads the cluster and compares it with the catalogue; changes nothing.
    pub async fn plan(&self, catalogue: &Catalogue) -> Result<Plan> {
        let metadata = self.admin.inner().fetch_metadata(None, self.timeout).map_err(|e| {
            Error::Cluster(format!(
                "cannot read cluster metadata from {} within {:?}: {e}. Is the broker running? (deploy/local/up starts one)",
                self.brokers, self.timeout
            ))
        })?;
        let mut on_broker: BTreeMap<String, (i32, i16)> = BTreeMap::new();
        for topic in metadata.topics() {
            if topic.error().is_some() {
                continue;
            }
            let replication = topic.partitions().first().map_or(0, |p| p.replicas().len());
            on_broker.insert(
                topic.name().to_owned(),
                (
                    i32::try_from(topic.partitions().len()).unwrap_or(i32::MAX),
                    i16::try_from(replication).unwrap_or(i16::MAX),
                ),
            );
        }

        let present: Vec<&TopicSpec> = catalogue
            .topics
            .iter()
            .filter(|t| on_broker.contains_key(&t.name))
            .collect();
        let mut configs = self.describe_configs(&present).await?;

        let topics = catalogue
            .topics
            .iter()
            .map(|spec| {
                let Some(&(partitions, replication_factor)) = on_broker.get(&spec.name) else {
                    return PlannedTopic {
                        spec: spec.clone(),
                        status: TopicStatus::Missing,
                        observed: None,
                    };
                };
                let observed = Observed {
                    partitions,
                    replication_factor,
                    configs: configs.remove(&spec.name).unwrap_or_default(),
                };
                let drift = compare(spec, &observed);
                let status = if drift.is_empty() {
                    TopicStatus::InSync
                } else {
                    TopicStatus::Drift(drift)
                };
                PlannedTopic {
                    spec: spec.clone(),
                    status,
                    observed: Some(observed),
                }
            })
            .collect();
        let listed: BTreeSet<&str> = catalogue.topics.iter().map(|t| t.name.as_str()).collect();
        let unmanaged = on_broker
            .keys()
            .filter(|name| !name.starts_with("__") && !listed.contains(name.as_str()))
            .cloned()
            .collect();
        Ok(Plan {
            topics,
            unmanaged,
            brokers: metadata.brokers().len(),
        })
    }

    /// Creates the missing topics; returns the plan with those marked [`TopicStatus::Created`].
    pub async fn apply(&self, catalogue: &Catalogue) -> Result<Plan> {
        let mut plan = self.plan(catalogue).await?;
        let missing: Vec<&TopicSpec> = plan
            .topics
            .iter()
            .filter(|t| t.status == TopicStatus::Missing)
            .map(|t| &t.spec)
            .collect();
        if missing.is_empty() {
            return Ok(plan);
        }
        if let Some(t) = missing
            .iter()
            .find(|t| t.replication_factor as usize > plan.brokers)
        {
            return Err(Error::Cluster(format!(
                "topic {} wants replication factor {} but the cluster has {} broker(s); \
                 pass --replication-factor {} for a smaller cluster",
                t.name, t.replication_factor, plan.brokers, plan.brokers
            )));
        }
        let configs: Vec<BTreeMap<String, String>> =
            missing.iter().map(|t| t.desired_configs()).collect();
        let new_topics: Vec<NewTopic<'_>> = missing
            .iter()
            .zip(&configs)
            .map(|(t, configs)| {
                configs.iter().fold(
                    NewTopic::new(
                        &t.name,
                        t.partitions,
                        TopicReplication::Fixed(i32::from(t.replication_factor)),
                    ),
                    |nt, (k, v)| nt.set(k, v),
                )
            })
            .collect();
        let options = AdminOptions::new()
            .operation_timeout(Some(self.timeout))
            .request_timeout(Some(self.timeout));
        let results = self
            .admin
            .create_topics(&new_topics, &options)
            .await
            .map_err(Error::kafka("create topics"))?;
        let mut created = BTreeSet::new();
        let mut raced = BTreeSet::new();
        for result in results {
            match result {
                Ok(name) => {
                    tracing::info!(topic = %name, "created topic");
                    created.insert(name);
                }
                // It exists already (another `apply` won the race, or the metadata this plan
                // read did not show it yet): compared like any other once visible, below.
                Err((name, RDKafkaErrorCode::TopicAlreadyExists)) => {
                    raced.insert(name);
                }
                Err((topic, code)) => {
                    return Err(Error::Provision {
                        topic,
                        reason: format!("the broker refused to create it: {code}"),
                    });
                }
            }
        }
        // A new topic takes a moment to show in the cluster's metadata; wait for it, so whoever
        // runs next (a service, or the next plan) finds it.
        self.wait_visible(created.iter().chain(&raced));
        if !raced.is_empty() {
            let again = self.plan(catalogue).await?;
            for (t, now) in plan.topics.iter_mut().zip(again.topics) {
                if raced.contains(&t.spec.name) {
                    *t = now;
                }
            }
        }
        for t in &mut plan.topics {
            if created.contains(&t.spec.name) {
                t.status = TopicStatus::Created;
            }
        }
        Ok(plan)
    }

    async fn describe_configs(
        &self,
        topics: &[&TopicSpec],
    ) -> Result<BTreeMap<String, BTreeMap<String, String>>> {
        if topics.is_empty() {
            return Ok(BTreeMap::new());
        }
        let specifiers: Vec<ResourceSpecifier<'_>> = topics
            .iter()
            .map(|t| ResourceSpecifier::Topic(&t.name))
            .collect();
        let options = AdminOptions::new().request_timeout(Some(self.timeout));
        let results = self
            .admin
            .describe_configs(&specifiers, &options)
            .await
            .map_err(Error::kafka("describe configs"))?;
        let mut out = BTreeMap::new();
        for (spec, result) in topics.iter().zip(results) {
            let resource = result.map_err(|code| Error::Provision {
                topic: spec.name.clone(),
                reason: format!("cannot read its settings: {code}"),
            })?;
            let wanted = spec.desired_configs();
            let entries = resource
                .entries
                .into_iter()
                .filter(|e| wanted.contains_key(&e.name))
                .map(|e| (e.name, e.value.unwrap_or_default()))
                .collect();
            out.insert(spec.name.clone(), entries);
        }
        Ok(out)
    }
}

/// Every way the broker's topic differs from the catalogue's.
pub fn compare(spec: &TopicSpec, observed: &Observed) -> Vec<Drift> {
    let mut drift = Vec::new();
    if observed.partitions != spec.partitions {
        drift.push(Drift {
            setting: "partitions".into(),
            catalogue: spec.partitions.to_string(),
            broker: observed.partitions.to_string(),
        });
    }
    if observed.replication_factor != spec.replication_factor {
        drift.push(Drift {
            setting: "replication factor".into(),
            catalogue: spec.replication_factor.to_string(),
            broker: observed.replication_factor.to_string(),
        });
    }
    for (key, want) in spec.desired_configs() {
        let have = observed
            .configs
            .get(&key)
            .map(String::as_str)
            .unwrap_or("<unset>");
        let same = if key == "cleanup.policy" {
            CleanupPolicy::parse_kafka(have) == CleanupPolicy::parse_kafka(&want)
        } else {
            have == want
        };
        if !same {
            drift.push(Drift {
                setting: key,
                catalogue: want,
                broker: have.to_owned(),
            });
        }
    }
    drift
}

impl fmt::Display for Plan {
    /// A table a person can read at a glance, then the drift in detail with what to do about it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let width = self
            .topics
            .iter()
            .map(|t| t.spec.name.len())
            .chain(self.unmanaged.iter().map(String::len))
            .max()
            .unwrap_or(5)
            .max(5);
        writeln!(
            f,
            "{:<width$}  {:<11}  {:>10}  {:>3}  {:<14}  {:>9}  STATUS",
            "TOPIC", "KIND", "PARTITIONS", "RF", "CLEANUP", "RETENTION"
        )?;
        for t in &self.topics {
            let partitions = match &t.observed {
                Some(o) if o.partitions != t.spec.partitions => {
                    format!("{}≠{}", o.partitions, t.spec.partitions)
                }
                _ => t.spec.partitions.to_string(),
            };
            let status = match &t.status {
                TopicStatus::Missing => "missing".to_owned(),
                TopicStatus::InSync => "in sync".to_owned(),
                TopicStatus::Created => "created".to_owned(),
                TopicStatus::Drift(d) => format!(
                    "DRIFT ({} setting{})",
                    d.len(),
                    if d.len() == 1 { "" } else { "s" }
                ),
            };
            writeln!(
                f,
                "{:<width$}  {:<11}  {:>10}  {:>3}  {:<14}  {:>9}  {status}",
                t.spec.name,
                t.spec.kind.label(),
                partitions,
                t.spec.replication_factor,
                t.spec.cleanup_policy.as_kafka(),
                t.spec.retention.to_string(),
            )?;
        }
        for name in &self.unmanaged {
            writeln!(
                f,
                "{name:<width$}  {:<11}  {:>10}  {:>3}  {:<14}  {:>9}  not in catalogue",
                "-", "-", "-", "-", "-"
            )?;
        }
        for t in &self.topics {
            if let TopicStatus::Drift(drift) = &t.status {
                writeln!(
                    f,
                    "\ndrift on {} (left as it is; change the broker or the catalogue):",
                    t.spec.name
                )?;
                for d in drift {
                    writeln!(
                        f,
                        "  {}: catalogue {}, broker {}",
                        d.setting, d.catalogue, d.broker
                    )?;
                }
            }
        }
        Ok(())
    }
}
