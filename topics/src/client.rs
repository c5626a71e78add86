//! Kafka client settings shared by every bluelight service.
//!
//! Each service flattens [`KafkaArgs`] into its own `clap` command, so `--brokers`, TLS and SASL read
//! the same way (and from the same environment variables) everywhere. Secrets never appear in
//! `Debug` output or in `--help`.

use std::{fmt, path::PathBuf};

use rdkafka::ClientConfig;

use crate::{Error, Result};

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum SecurityProtocol {
    Plaintext,
    Ssl,
    SaslPlaintext,
    SaslSsl,
}

impl SecurityProtocol {
    fn as_kafka(self) -> &'static str {
        match self {
            SecurityProtocol::Plaintext => "plaintext",
            SecurityProtocol::Ssl => "ssl",
            SecurityProtocol::SaslPlaintext => "sasl_plaintext",
            SecurityProtocol::SaslSsl => "sasl_ssl",
        }
    }

    fn uses_sasl(self) -> bool {
        matches!(
            self,
            SecurityProtocol::SaslPlaintext | SecurityProtocol::SaslSsl
        )
    }

    fn uses_tls(self) -> bool {
        matches!(self, SecurityProtocol::Ssl | SecurityProtocol::SaslSsl)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum SaslMechanism {
    #[value(name = "SCRAM-SHA-512")]
    ScramSha512,
    #[value(name = "SCRAM-SHA-256")]
    ScramSha256,
    #[value(name = "PLAIN")]
    Plain,
}

impl SaslMechanism {
    fn as_kafka(self) -> &'static str {
        match self {
            SaslMechanism::ScramSha512 => "SCRAM-SHA-512",
            SaslMechanism::ScramSha256 => "SCRAM-SHA-256",
            SaslMechanism::Plain => "PLAIN",
        }
    }
}

/// How to reach the Kafka cluster.
#[derive(Clone, clap::Args)]
#[command(next_help_heading = "Kafka connection")]
pub struct KafkaArgs {
    /// Bootstrap brokers, comma-separated host:port pairs.
    #[arg(
        long,
        env = "BLUELIGHT_BROKERS",
        default_value = "localhost:9092",
        value_name = "HOST:PORT,..."
    )]
    pub brokers: String,

    /// Client id sent to the broker (shows in broker logs, quotas and ACL audit). Defaults to
    /// `bluelight-<service>`.
    #[arg(long, env = "BLUELIGHT_CLIENT_ID")]
    pub client_id: Option<String>,

    /// How to talk to the brokers. `sasl-ssl` is what a production cluster should use.
    #[arg(
        long,
        env = "BLUELIGHT_KAFKA_SECURITY_PROTOCOL",
        value_enum,
        default_value = "plaintext"
    )]
    pub security_protocol: SecurityProtocol,

    /// SASL mechanism, with `--security-protocol sasl-ssl` or `sasl-plaintext`.
    #[arg(
        long,
        env = "BLUELIGHT_KAFKA_SASL_MECHANISM",
        value_enum,
        default_value = "SCRAM-SHA-512"
    )]
    pub sasl_mechanism: SaslMechanism,

    /// SASL user name (the service's Kafka principal).
    #[arg(long, env = "BLUELIGHT_KAFKA_SASL_USERNAME")]
    pub sasl_username: Option<String>,

    /// SASL password. Prefer the environment variable to the flag, so it stays out of `ps`.
    #[arg(long, env = "BLUELIGHT_KAFKA_SASL_PASSWORD", hide_env_values = true)]
    pub sasl_password: Option<String>,

    /// PEM file of the CA certificates that sign the brokers' certificates (TLS).
    #[arg(long, env = "BLUELIGHT_KAFKA_SSL_CA")]
    pub ssl_ca_location: Option<PathBuf>,

    /// PEM client certificate, for brokers that require mutual TLS.
    #[arg(long, env = "BLUELIGHT_KAFKA_SSL_CERT", requires = "ssl_key_location")]
    pub ssl_certificate_location: Option<PathBuf>,

    /// PEM private key of the client certificate.
    #[arg(
        long,
        env = "BLUELIGHT_KAFKA_SSL_KEY",
        requires = "ssl_certificate_location"
    )]
    pub ssl_key_location: Option<PathBuf>,

    /// Password of the client key, if it is encrypted.
    #[arg(long, env = "BLUELIGHT_KAFKA_SSL_KEY_PASSWORD", hide_env_values = true)]
    pub ssl_key_password: Option<String>,

    /// Any further librdkafka property as key=value (repeat the flag, or comma-separate in the
    /// environment variable), e.g. `--kafka-property socket.keepalive.enable=true`. Applied last.
    #[arg(long = "kafka-property", env = "BLUELIGHT_KAFKA_PROPERTIES", value_delimiter = ',', value_parser = parse_property, value_name = "KEY=VALUE")]
    pub properties: Vec<(String, String)>,
}

impl Default for KafkaArgs {
    fn default() -> Self {
        KafkaArgs {
            brokers: "localhost:9092".into(),
            client_id: None,
            security_protocol: SecurityProtocol::Plaintext,
            sasl_mechanism: SaslMechanism::ScramSha512,
            sasl_username: None,
            sasl_password: None,
            ssl_ca_location: None,
            ssl_certificate_location: None,
            ssl_key_location: None,
            ssl_key_password: None,
            properties: Vec::new(),
        }
    }
}

impl KafkaArgs {
    /// Settings for brokers at `brokers`, everything else default: for tests and tools.
    pub fn for_brokers(brokers: impl Into<String>) -> Self {
        KafkaArgs {
            brokers: brokers.into(),
            ..KafkaArgs::default()
        }
    }

    /// The librdkafka configuration common to every client of `service`.
    pub fn client_config(&self, service: &str) -> Result<ClientConfig> {
        if self.brokers.trim().is_empty() {
            return Err(Error::ClientConfig(
                "--brokers (BLUELIGHT_BROKERS) is empty".into(),
            ));
        }
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", self.brokers.trim())
            .set(
                "client.id",
                self.client_id
                    .clone()
                    .unwrap_or_else(|| format!("bluelight-{service}")),
            )
            .set("security.protocol", self.security_protocol.as_kafka());

        if self.security_protocol.uses_sasl() {
            let (Some(user), Some(password)) = (&self.sasl_username, &self.sasl_password) else {
                return Err(Error::ClientConfig(format!(
                    "--security-protocol {} needs --sasl-username and BLUELIGHT_KAFKA_SASL_PASSWORD",
                    self.security_protocol.as_kafka()
                )));
            };
            config
                .set("sasl.mechanism", self.sasl_mechanism.as_kafka())
                .set("sasl.username", user)
                .set("sasl.password", password);
        } else if self.sasl_username.is_some() || self.sasl_password.is_some() {
            return Err(Error::ClientConfig(format!(
                "SASL credentials were given but --security-protocol is {}; use sasl-ssl",
                self.security_protocol.as_kafka()
            )));
        }

        let tls_files = [
            ("ssl.ca.location", &self.ssl_ca_location),
            ("ssl.certificate.location", &self.ssl_certificate_location),
            ("ssl.key.location", &self.ssl_key_location),
        ];
        for (key, path) in tls_files {
            let Some(path) = path else { continue };
            if !self.security_protocol.uses_tls() {
                return Err(Error::ClientConfig(format!(
                    "{key} was given but --security-protocol is {}; use ssl or sasl-ssl",
                    self.security_protocol.as_kafka()
                )));
            }
            if !path.is_file() {
                return Err(Error::ClientConfig(format!(
                    "{key}: {} is not a readable file",
                    path.display()
                )));
            }
            config.set(key, path.display().to_string());
        }
        if let Some(password) = &self.ssl_key_password {
            config.set("ssl.key.password", password);
        }
        for (key, value) in &self.properties {
            config.set(key, value);
        }
        Ok(config)
    }
}

impl fmt::Debug for KafkaArgs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secret = |s: &Option<String>| s.as_ref().map(|_| "<redacted>");
        f.debug_struct("KafkaArgs")
            .field("brokers", &self.brokers)
            .field("client_id", &self.client_id)
            .field("security_protocol", &self.security_protocol)
            .field("sasl_mechanism", &self.sasl_mechanism)
            .field("sasl_username", &self.sasl_username)
            .field("sasl_password", &secret(&self.sasl_password))
            .field("ssl_ca_location", &self.ssl_ca_location)
            .field("ssl_certificate_location", &self.ssl_certificate_location)
            .field("ssl_key_location", &self.ssl_key_location)
            .field("ssl_key_password", &secret(&self.ssl_key_password))
            .field(
                "properties",
                &self.properties.iter().map(|(k, _)| k).collect::<Vec<_>>(),
            )
            .finish()
    }
}

fn parse_property(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_owned(), v.to_owned())),
        _ => Err(format!("{s:?} is not KEY=VALUE (e.g. linger.ms=5)")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get<'a>(c: &'a ClientConfig, key: &str) -> Option<&'a str> {
        c.get(key)
    }

    #[test]
    fn plaintext_defaults_name_the_service() {
        let c = KafkaArgs::for_brokers("b1:9092,b2:9092")
            .client_config("ingest")
            .expect("config");
        assert_eq!(get(&c, "bootstrap.servers"), Some("b1:9092,b2:9092"));
        assert_eq!(get(&c, "client.id"), Some("bluelight-ingest"));
        assert_eq!(get(&c, "security.protocol"), Some("plaintext"));
        assert_eq!(get(&c, "sasl.username"), None);
    }

    #[test]
    fn sasl_needs_credentials_and_passes_them_through() {
        let mut args = KafkaArgs {
            security_protocol: SecurityProtocol::SaslSsl,
            ..KafkaArgs::default()
        };
        let err = args
            .client_config("project")
            .expect_err("no credentials")
            .to_string();
        assert!(err.contains("needs --sasl-username"), "{err}");
        args.sasl_username = Some("projector".into());
        args.sasl_password = Some("s3cret".into());
        let c = args.client_config("project").expect("config");
        assert_eq!(get(&c, "sasl.mechanism"), Some("SCRAM-SHA-512"));
        assert_eq!(get(&c, "security.protocol"), Some("sasl_ssl"));
        assert!(!format!("{args:?}").contains("s3cret"));
    }

    #[test]
    fn mismatched_security_settings_are_refused() {
        let args = KafkaArgs {
            sasl_username: Some("u".into()),
            ..KafkaArgs::default()
        };
        assert!(args.client_config("x").is_err());
        let args = KafkaArgs {
            ssl_ca_location: Some("/etc/hostname".into()),
            ..KafkaArgs::default()
        };
        assert!(
            args.client_config("x")
                .expect_err("plaintext with a CA")
                .to_string()
                .contains("use ssl")
        );
        let args = KafkaArgs {
            security_protocol: SecurityProtocol::Ssl,
            ssl_ca_location: Some("/no/such/ca.pem".into()),
            ..KafkaArgs::default()
        };
        assert!(
            args.client_config("x")
                .expect_err("missing CA")
                .to_string()
                .contains("not a readable file")
        );
    }

    #[test]
    fn extra_properties_apply_last_and_parse_strictly() {
        let args = KafkaArgs {
            properties: vec![
                ("client.id".into(), "custom".into()),
                ("linger.ms".into(), "5".into()),
            ],
            ..KafkaArgs::default()
        };
        let c = args.client_config("x").expect("config");
        assert_eq!(
            (get(&c, "client.id"), get(&c, "linger.ms")),
            (Some("custom"), Some("5"))
        );
        assert_eq!(parse_property("a=b=c"), Ok(("a".into(), "b=c".into())));
        assert!(parse_property("novalue").is_err());
    }
}
