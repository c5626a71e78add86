//! Which schema belongs to which topic, and the `.avsc` files generated from the typed records.

use std::path::Path;

use apache_avro::Schema;

use crate::{
    Codec, Error, Result,
    records::{
        CanonicalRecord, CaseEvent, Consultation, Disclosure, IncidentEvent, Retraction,
        VictimEvent, VictimNotificationAck, VictimUpdate, VictimUpdateAlert,
    },
};

/// One canonical schema: its file, its topic, and the schema derived from its Rust type.
#[derive(Debug, Clone)]
pub struct SchemaDef {
    /// Stem of `avro/schemas/<file>.avsc`.
    pub file: &'static str,
    /// Topic whose values use it, if the topic name is fixed.
    pub topic: Option<&'static str>,
    /// Fully qualified record name, e.g. `uk.bluelight.v1.IncidentEvent`.
    pub full_name: String,
    pub schema: Schema,
}

impl SchemaDef {
    fn of<T: CanonicalRecord>() -> Self {
        let schema = T::get_schema();
        let full_name = match &schema {
            Schema::Record(r) => r.name.fullname(None),
            other => format!("{other:?}"),
        };
        SchemaDef {
            file: T::FILE,
            topic: T::TOPIC,
            full_name,
            schema,
        }
    }

    /// Registry subject under the TopicNameStrategy, `<topic>-value`.
    pub fn subject(&self) -> Option<String> {
        self.topic.map(|t| format!("{t}-value"))
    }

    /// The schema as JSON text, with every doc and default: what the `.avsc` file holds and what
    /// is registered.
    pub fn to_json(&self) -> String {
        let mut text = serde_json::to_string_pretty(&self.schema).unwrap_or_default();
        text.push('\n');
        text
    }
}

/// Every canonical schema, in dependency-free order.
pub fn all() -> Vec<SchemaDef> {
    vec![
        SchemaDef::of::<IncidentEvent>(),
        SchemaDef::of::<CaseEvent>(),
        SchemaDef::of::<VictimEvent>(),
        SchemaDef::of::<VictimUpdate>(),
        SchemaDef::of::<Disclosure>(),
        SchemaDef::of::<Retraction>(),
        SchemaDef::of::<VictimNotificationAck>(),
        SchemaDef::of::<VictimUpdateAlert>(),
        SchemaDef::of::<Consultation>(),
    ]
}

/// Writes every schema to `<dir>/<file>.avsc`; returns the paths written.
pub fn export(dir: &Path) -> Result<Vec<std::path::PathBuf>> {
    std::fs::create_dir_all(dir)
        .map_err(|e| Error::Io(format!("create {}: {e}", dir.display())))?;
    all()
        .into_iter()
        .map(|def| {
            let path = dir.join(format!("{}.avsc", def.file));
            std::fs::write(&path, def.to_json())
                .map_err(|e| Error::Io(format!("write {}: {e}", path.display())))?;
            Ok(path)
        })
        .collect()
}

/// Registers every canonical schema that has a fixed topic under `<topic>-value`, keeping each for
/// encoding; returns `(subject, id)` pairs in catalogue order.
pub async fn register_all(codec: &Codec) -> Result<Vec<(String, u32)>> {
    Ok(vec![
        register_one::<IncidentEvent>(codec).await?,
        register_one::<CaseEvent>(codec).await?,
        register_one::<VictimEvent>(codec).await?,
        register_one::<VictimUpdate>(codec).await?,
        register_one::<Disclosure>(codec).await?,
        register_one::<VictimNotificationAck>(codec).await?,
        register_one::<VictimUpdateAlert>(codec).await?,
        register_one::<Consultation>(codec).await?,
    ])
}

async fn register_one<T: CanonicalRecord>(codec: &Codec) -> Result<(String, u32)> {
    let subject = format!("{}-value", T::TOPIC.unwrap_or(T::FILE));
    let id = codec.register::<T>(&subject).await?;
    Ok((subject, id))
}

#[cfg(test)]
mod tests;
