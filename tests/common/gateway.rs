//! Helpers for the gateway tests: a users file, the gateway as a child process, a small
//! Server-Sent Events reader, and the consultation records an organisation left.

use std::time::{Duration, Instant};

use bluelight_avro::{Codec, records::Consultation};
use bluelight_topics::tokens::token_hash;

use super::{Service, ensure_topics, project::Setup, project::read_all, start_service_env};

pub const CONSULTATION_TOPIC: &str = "audit.consultation.v1";

/// One credential: (name, organisation, role, token).
pub type Cred<'a> = (&'a str, &'a str, &'a str, &'a str);

/// Writes a users file next to the setup's agreements and returns its path.
pub fn users_file(s: &Setup, creds: &[Cred<'_>]) -> std::path::PathBuf {
    let mut text = String::new();
    for (name, org, role, token) in creds {
        text.push_str(&format!(
            "[[user]]\nname = \"{name}\"\norg = \"{org}\"\nrole = \"{role}\"\ntoken_sha256 = \"{}\"\n\n",
            token_hash(token)
        ));
    }
    let path = s.dir.with_extension("users.toml");
    std::fs::write(&path, text).expect("users file");
    path
}

/// Starts `bluelight gateway` for the setup's agreements and registry.
pub async fn start_gateway(s: &Setup, creds: &[Cred<'_>], extra: &[&str]) -> Service {
    start_gateway_env(s, creds, extra, &[]).await
}

/// `start_gateway` with extra environment variables.
pub async fn start_gateway_env(
    s: &Setup,
    creds: &[Cred<'_>],
    extra: &[&str],
    env: &[(&str, &str)],
) -> Service {
    ensure_topics(&[(CONSULTATION_TOPIC, false)]).await;
    let users = users_file(s, creds);
    let mut args = vec![
        "--log",
        "info,rdkafka=warn",
        "gateway",
        "--users",
        users.to_str().expect("path"),
        "--agreements",
        s.dir.to_str().expect("dir"),
        "--schema-registry",
        &s.registry_url,
    ];
    args.extend_from_slice(extra);
    start_service_env(&args, env).await
}

/// Starts `bluelight ingest` with one CAD source, `test-cad`, for the setup's controller; returns
/// the service and the source's token.
pub async fn start_ingest(s: &Setup, env: &[(&str, &str)]) -> (Service, String) {
    let token = format!("cad-{}", bluelight_topics::testing::unique(""));
    let sources = s.dir.with_extension("sources.toml");
    std::fs::write(
        &sources,
        format!(
            "[[source]]\nname = \"test-cad\"\norg = \"{}\"\nsystem = \"cad\"\nadapter = \"cad\"\ntoken_sha256 = \"{}\"\n",
            s.controller,
            token_hash(&token)
        ),
    )
    .expect("sources");
    let ingest = start_service_env(
        &[
            "--log",
            "info,rdkafka=warn",
            "ingest",
            "--sources",
            sources.to_str().expect("path"),
            "--schema-registry",
            &s.registry_url,
        ],
        env,
    )
    .await;
    (ingest, token)
}

/// One Server-Sent Event.
#[derive(Debug, Clone)]
pub struct Event {
    pub event: String,
    pub id: Option<String>,
    pub data: String,
}

impl Event {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.data).expect("event data is JSON")
    }
}

/// Reads `text/event-stream` from a response, one event at a time.
pub struct Sse {
    response: reqwest::Response,
    buf: String,
}

impl Sse {
    /// Opens `feed`'s stream; panics unless the gateway answers 200.
    pub async fn open(
        gateway: &str,
        token: &str,
        feed: &str,
        last_id: Option<&str>,
        from: Option<&str>,
    ) -> Sse {
        let r = request(gateway, token, feed, last_id, from).await;
        assert_eq!(r.status(), 200, "opening {feed}: {:?}", r.text().await);
        Sse {
            response: r,
            buf: String::new(),
        }
    }

    /// The next event within `within`, or `None` (timeout or end of stream).
    pub async fn next(&mut self, within: Duration) -> Option<Event> {
        let deadline = Instant::now() + within;
        loop {
            if let Some(ev) = self.take() {
                return Some(ev);
            }
            let left = deadline.checked_duration_since(Instant::now())?;
            match tokio::time::timeout(left, self.response.chunk()).await {
                Ok(Ok(Some(bytes))) => self.buf.push_str(&String::from_utf8_lossy(&bytes)),
                Ok(Ok(None) | Err(_)) | Err(_) => return None,
            }
        }
    }

    /// The next `record` events until `n` arrived or `within` passed (other events are skipped).
    pub async fn records(&mut self, n: usize, within: Duration) -> Vec<Event> {
        let deadline = Instant::now() + within;
        let mut out = Vec::new();
        while out.len() < n {
            let Some(left) = deadline.checked_duration_since(Instant::now()) else {
                break;
            };
            match self.next(left).await {
                Some(ev) if ev.event == "record" => out.push(ev),
                Some(_) => {}
                None => break,
            }
        }
        out
    }

    fn take(&mut self) -> Option<Event> {
        let end = self.buf.find("\n\n")?;
        let block: String = self.buf.drain(..end + 2).collect();
        Some(parse(&block).unwrap_or_else(|| Event {
            event: "comment".into(),
            id: None,
            data: String::new(),
        }))
    }
}

/// Parses one event block; `None` for a comment-only block (keep-alive).
pub fn parse(block: &str) -> Option<Event> {
    let mut ev = Event {
        event: "message".into(),
        id: None,
        data: String::new(),
    };
    let mut any = false;
    for line in block.lines() {
        let (field, value) = line
            .split_once(':')
            .map_or((line, ""), |(f, v)| (f, v.strip_prefix(' ').unwrap_or(v)));
        match field {
            "event" => ev.event = value.to_owned(),
            "id" => ev.id = Some(value.to_owned()),
            "data" => {
                if any && !ev.data.is_empty() {
                    ev.data.push('\n');
                }
                ev.data.push_str(value);
            }
            _ => continue,
        }
        any = true;
    }
    any.then_some(ev)
}

/// GET of a feed's events, whatever the answer.
pub async fn request(
    gateway: &str,
    token: &str,
    feed: &str,
    last_id: Option<&str>,
    from: Option<&str>,
) -> reqwest::Response {
    let mut url = format!("{gateway}/v1/feeds/{feed}/events");
    if let Some(f) = from {
        url.push_str(&format!("?from={f}"));
    }
    let mut req = reqwest::Client::new().get(url).bearer_auth(token);
    if let Some(id) = last_id {
        req = req.header("last-event-id", id);
    }
    req.send().await.expect("request")
}

/// Every consultation record `org` has on the consultation topic.
pub async fn consultations(codec: &Codec, org: &str, want: usize) -> Vec<Consultation> {
    let mut out = Vec::new();
    for (key, payload, _) in read_all(CONSULTATION_TOPIC, want, Duration::from_secs(30)) {
        if key == org {
            out.push(
                codec
                    .decode::<Consultation>(&payload)
                    .await
                    .expect("consultation decodes"),
            );
        }
    }
    out
}
