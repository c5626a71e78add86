//! The embedded schema registry against the real broker from `deploy/local/test`, over HTTP as
//! Confluent's clients use it. Every test has its own registry topic.

use std::{collections::BTreeMap, time::Duration};

use bluelight_avro::{
    Error,
    registry::{self, Registry, RegistryConfig},
};
use bluelight_topics::testing::{self, unique};
use rdkafka::{
    ClientConfig, Message,
    admin::{AdminClient, AdminOptions, NewTopic, TopicReplication},
    client::DefaultClientContext,
    consumer::{BaseConsumer, Consumer},
    producer::{FutureProducer, FutureRecord},
    util::Timeout,
};
use reqwest::Method;
use serde_json::{Value, json};

const TIMEOUT: Duration = Duration::from_secs(20);

fn kafka() -> ClientConfig {
    testing::kafka()
        .client_config("registry-test")
        .expect("client config")
}

/// A fresh compacted, single-partition registry topic, visible in the broker's metadata.
async fn registry_topic() -> String {
    let topic = unique("_schemas_");
    let admin: AdminClient<DefaultClientContext> = kafka().create().expect("admin client");
    let new = NewTopic::new(&topic, 1, TopicReplication::Fixed(1)).set("cleanup.policy", "compact");
    let options = AdminOptions::new().operation_timeout(Some(TIMEOUT));
    for result in admin
        .create_topics([&new], &options)
        .await
        .expect("create topic")
    {
        result.expect("topic created");
    }
    let consumer: BaseConsumer = kafka().create().expect("consumer");
    let deadline = std::time::Instant::now() + TIMEOUT;
    loop {
        let metadata = consumer
            .fetch_metadata(Some(&topic), TIMEOUT)
            .expect("metadata");
        if metadata
            .topics()
            .iter()
            .any(|t| t.error().is_none() && t.partitions().len() == 1)
        {
            return topic;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{topic} never appeared"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn config(topic: &str) -> RegistryConfig {
    let mut config = RegistryConfig::new(kafka());
    config.topic = topic.to_owned();
    config.max_request_bytes = 64 * 1024;
    config
}

/// A registry instance served on a free local port.
struct Server {
    registry: Registry,
    base: String,
    http: reqwest::Client,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve(topic: &str) -> Server {
    let registry = Registry::start(config(topic))
        .await
        .expect("registry starts");
    assert_eq!(registry.ready(), Ok(()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("address"));
    let app = registry::router(registry.clone());
    let task = tokio::spawn(async move {
        axum::serve(listener, app).await.expect("serve");
    });
    Server {
        registry,
        base,
        http: reqwest::Client::new(),
        task,
    }
}

impl Server {
    async fn call(&self, method: Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut request = self.http.request(method, format!("{}{path}", self.base));
        if let Some(body) = body {
            request = request
                .header("Content-Type", registry::CONTENT_TYPE)
                .body(body.to_string());
        }
        let response = request.send().await.expect("request");
        let status = response.status().as_u16();
        let content_type = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        assert_eq!(
            content_type.as_deref(),
            Some(registry::CONTENT_TYPE),
            "{path}"
        );
        let text = response.text().await.expect("body");
        let value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}: {text}"));
        (status, value)
    }

    async fn get(&self, path: &str) -> (u16, Value) {
        self.call(Method::GET, path, None).await
    }

    async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        self.call(Method::POST, path, Some(body)).await
    }

    async fn put(&self, path: &str, body: Value) -> (u16, Value) {
        self.call(Method::PUT, path, Some(body)).await
    }

    async fn delete(&self, path: &str) -> (u16, Value) {
        self.call(Method::DELETE, path, None).await
    }

    /// Registers and returns the id, asserting success.
    async fn register(&self, subject: &str, schema: &str) -> u64 {
        let (status, body) = self
            .post(
                &format!("/subjects/{subject}/versions"),
                json!({ "schema": schema }),
            )
            .await;
        assert_eq!(status, 200, "registering under {subject}: {body}");
        body["id"].as_u64().expect("id")
    }

    /// Every version of every subject (soft-deleted ones too), and the global level.
    async fn snapshot(&self) -> BTreeMap<String, Value> {
        let mut out = BTreeMap::new();
        let (_, subjects) = self.get("/subjects?deleted=true").await;
        for subject in subjects.as_array().expect("subjects") {
            let subject = subject.as_str().expect("subject");
            let (_, versions) = self
                .get(&format!("/subjects/{subject}/versions?deleted=true"))
                .await;
            for version in versions.as_array().expect("versions") {
                let (status, body) = self
                    .get(&format!(
                        "/subjects/{subject}/versions/{version}?deleted=true"
                    ))
                    .await;
                assert_eq!(status, 200, "{body}");
                out.insert(format!("{subject}/{version}"), body);
            }
        }
        out.insert("config".into(), self.get("/config").await.1);
        out
    }
}

/// An error answer's (status, error_code).
fn error(answer: &(u16, Value)) -> (u16, i64) {
    (answer.0, answer.1["error_code"].as_i64().unwrap_or(-1))
}

fn record_schema(name: &str, fields: &str) -> String {
    json!({"type": "record", "name": name, "namespace": "bl.test", "fields": serde_json::from_str::<Value>(&format!("[{fields}]")).expect("fields")}).to_string()
}

fn v1() -> String {
    record_schema("Incident", r#"{"name":"id","type":"string"}"#)
}

fn v2() -> String {
    record_schema(
        "Incident",
        r#"{"name":"id","type":"string"},{"name":"force","type":"string","default":""}"#,
    )
}

fn v3_no_default() -> String {
    record_schema(
        "Incident",
        r#"{"name":"id","type":"string"},{"name":"grade","type":"int"}"#,
    )
}

#[tokio::test]
async fn register_look_up_and_read_back() {
    let s = serve(&registry_topic().await).await;
    assert_eq!(s.get("/").await, (200, json!({})));
    assert_eq!(s.get("/schemas/types").await, (200, json!(["AVRO"])));

    let id1 = s.register("incident-value", &v1()).await;
    assert_eq!(
        s.register("incident-value", &v1()).await,
        id1,
        "same id again"
    );
    // A different spelling of the same schema is the same schema.
    let respelled =
        serde_json::to_string_pretty(&serde_json::from_str::<Value>(&v1()).expect("json"))
            .expect("pretty");
    assert_eq!(s.register("incident-value", &respelled).await, id1);
    assert_eq!(
        s.get("/subjects/incident-value/versions").await,
        (200, json!([1]))
    );

    let (status, body) = s
        .get(&format!("/schemas/ids/{id1}?fetchMaxId=false&subject=x"))
        .await;
    assert_eq!(status, 200);
    assert_eq!(body, json!({ "schema": v1() }));
    assert_eq!(
        s.get(&format!("/schemas/ids/{id1}/schema")).await.1,
        serde_json::from_str::<Value>(&v1()).expect("json")
    );

    let id2 = s.register("incident-value", &v2()).await;
    assert_ne!(id1, id2);
    assert_eq!(
        s.get("/subjects/incident-value/versions").await.1,
        json!([1, 2])
    );
    let latest = json!({"subject": "incident-value", "version": 2, "id": id2, "schema": v2()});
    assert_eq!(
        s.get("/subjects/incident-value/versions/latest").await,
        (200, latest.clone())
    );
    assert_eq!(
        s.get("/subjects/incident-value/versions/-1").await.1,
        latest
    );
    assert_eq!(s.get("/subjects/incident-value/versions/2").await.1, latest);
    assert_eq!(
        s.get("/subjects/incident-value/versions/1/schema").await.1,
        serde_json::from_str::<Value>(&v1()).expect("json")
    );

    let (status, found) = s
        .post(
            "/subjects/incident-value?normalize=false",
            json!({ "schema": v1(), "schemaType": "AVRO", "references": [] }),
        )
        .await;
    assert_eq!(status, 200, "{found}");
    assert_eq!(
        found,
        json!({"subject": "incident-value", "version": 1, "id": id1, "schema": v1()})
    );

    // The same schema under another subject keeps its id.
    assert_eq!(s.register("case-value", &v1()).await, id1);
    assert_eq!(s.get("/subjects/case-value/versions").await.1, json!([1]));
    assert_eq!(
        s.get(&format!("/schemas/ids/{id1}/subjects")).await.1,
        json!(["case-value", "incident-value"])
    );
    assert_eq!(
        s.get(&format!("/schemas/ids/{id1}/versions")).await.1,
        json!([{"subject": "case-value", "version": 1}, {"subject": "incident-value", "version": 1}])
    );
    assert_eq!(
        s.get("/subjects").await.1,
        json!(["case-value", "incident-value"])
    );
    assert_eq!(
        s.get("/subjects?subjectPrefix=inc").await.1,
        json!(["incident-value"])
    );

    // Body content types Confluent's clients use are all accepted.
    for content_type in [
        "application/json",
        "application/vnd.schemaregistry+json",
        "application/octet-stream",
    ] {
        let response = s
            .http
            .post(format!("{}/subjects/incident-value/versions", s.base))
            .header("Content-Type", content_type)
            .body(json!({ "schema": v2() }).to_string())
            .send()
            .await
            .expect("request");
        assert_eq!(response.status().as_u16(), 200, "{content_type}");
    }
}

#[tokio::test]
async fn errors_carry_confluents_status_and_error_codes() {
    let s = serve(&registry_topic().await).await;
    let id = s.register("known", &v1()).await;

    let not_avro = s
        .post(
            "/subjects/known/versions",
            json!({"schema": "{\"type\": \"recrod\"}"}),
        )
        .await;
    assert_eq!(error(&not_avro), (422, 42201), "{not_avro:?}");
    let protobuf = s
        .post(
            "/subjects/known/versions",
            json!({"schema": "syntax = \"proto3\";", "schemaType": "PROTOBUF"}),
        )
        .await;
    assert_eq!(error(&protobuf), (422, 42201));
    assert!(
        protobuf.1["message"]
            .as_str()
            .unwrap_or_default()
            .contains("only Avro"),
        "{protobuf:?}"
    );
    let references = s
        .post(
            "/subjects/known/versions",
            json!({"schema": v2(), "references": [{"name": "x", "subject": "y", "version": 1}]}),
        )
        .await;
    assert_eq!(error(&references), (422, 42201));
    assert!(
        references.1["message"]
            .as_str()
            .unwrap_or_default()
            .contains("references")
    );

    assert_eq!(
        error(&s.get("/subjects/unknown/versions").await),
        (404, 40401)
    );
    assert_eq!(
        error(&s.get("/subjects/unknown/versions/1").await),
        (404, 40401)
    );
    assert_eq!(
        error(&s.post("/subjects/unknown", json!({"schema": v1()})).await),
        (404, 40401)
    );
    assert_eq!(
        error(&s.get("/subjects/known/versions/7").await),
        (404, 40402)
    );
    assert_eq!(
        error(&s.get("/subjects/known/versions/abc").await),
        (422, 42202)
    );
    assert_eq!(
        error(&s.get("/subjects/known/versions/0").await),
        (422, 42202)
    );
    assert_eq!(
        error(&s.post("/subjects/known", json!({"schema": v2()})).await),
        (404, 40403)
    );
    assert_eq!(
        error(&s.get(&format!("/schemas/ids/{}", id + 1000)).await),
        (404, 40403)
    );
    assert_eq!(error(&s.get("/no/such/route").await), (404, 404));
    assert_eq!(
        error(&s.call(Method::PATCH, "/subjects", None).await),
        (405, 405)
    );

    // Bodies that are not the expected JSON, of the wrong type, or too large.
    let response = s
        .http
        .post(format!("{}/subjects/known/versions", s.base))
        .header("Content-Type", registry::CONTENT_TYPE)
        .body("{\"schema\": ")
        .send()
        .await
        .expect("request");
    assert_eq!(response.status().as_u16(), 422);
    let body: Value = response.json().await.expect("json error");
    assert_eq!(body["error_code"], 42201);
    assert_eq!(
        error(
            &s.post("/subjects/known/versions", json!({"schemata": "x"}))
                .await
        ),
        (422, 42201)
    );
    let response = s
        .http
        .post(format!("{}/subjects/known/versions", s.base))
        .header("Content-Type", "text/plain")
        .body(json!({"schema": v1()}).to_string())
        .send()
        .await
        .expect("request");
    assert_eq!(response.status().as_u16(), 415);
    let huge = json!({"schema": format!("\"string\"{}", " ".repeat(100 * 1024))});
    assert_eq!(
        error(&s.post("/subjects/known/versions", huge).await),
        (413, 413)
    );
}

#[tokio::test]
async fn incompatible_changes_are_refused_with_409() {
    let s = serve(&registry_topic().await).await;
    assert_eq!(
        s.put("/config/incident", json!({"compatibility": "BACKWARD"}))
            .await
            .0,
        200
    );
    s.register("incident", &v1()).await;

    let refused = s
        .post(
            "/subjects/incident/versions",
            json!({"schema": v3_no_default()}),
        )
        .await;
    assert_eq!(error(&refused), (409, 409), "{refused:?}");
    let message = refused.1["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("grade") && message.contains("incompatible"),
        "{message}"
    );
    assert_eq!(
        s.get("/subjects/incident/versions").await.1,
        json!([1]),
        "nothing written"
    );

    let check = |version: &str, verbose: bool, schema: String| {
        let path = format!("/compatibility/subjects/incident/versions/{version}?verbose={verbose}");
        let s = &s;
        async move { s.post(&path, json!({ "schema": schema })).await }
    };
    let answer = check("latest", true, v3_no_default()).await;
    assert_eq!(answer.0, 200);
    assert_eq!(answer.1["is_compatible"], false);
    assert!(
        !answer.1["messages"]
            .as_array()
            .expect("messages")
            .is_empty()
    );
    assert_eq!(
        check("1", false, v2()).await,
        (200, json!({"is_compatible": true}))
    );
    assert_eq!(
        s.post(
            "/compatibility/subjects/incident/versions",
            json!({"schema": v2()})
        )
        .await,
        (200, json!({"is_compatible": true}))
    );
    assert_eq!(error(&check("2", false, v2()).await), (404, 40402));
    assert_eq!(
        error(
            &s.post(
                "/compatibility/subjects/nobody/versions/1",
                json!({"schema": v2()})
            )
            .await
        ),
        (404, 40401)
    );
    assert_eq!(
        s.post(
            "/compatibility/subjects/nobody/versions/latest",
            json!({"schema": v2()})
        )
        .await,
        (200, json!({"is_compatible": true}))
    );

    // With the subject at NONE anything goes.
    assert_eq!(
        s.put("/config/incident", json!({"compatibility": "NONE"}))
            .await
            .0,
        200
    );
    s.register("incident", &v3_no_default()).await;
    assert_eq!(s.get("/subjects/incident/versions").await.1, json!([1, 2]));
}

#[tokio::test]
async fn global_and_subject_compatibility_levels() {
    let s = serve(&registry_topic().await).await;
    assert_eq!(
        s.get("/config").await,
        (200, json!({"compatibilityLevel": "BACKWARD_TRANSITIVE"}))
    );
    assert_eq!(
        s.put("/config", json!({"compatibility": "FULL"})).await,
        (200, json!({"compatibility": "FULL"}))
    );
    assert_eq!(
        s.get("/config").await.1,
        json!({"compatibilityLevel": "FULL"})
    );

    assert_eq!(error(&s.get("/config/incident").await), (404, 40408));
    assert_eq!(
        s.get("/config/incident?defaultToGlobal=true").await.1,
        json!({"compatibilityLevel": "FULL"})
    );
    assert_eq!(
        s.put(
            "/config/incident",
            json!({"compatibility": "FORWARD_TRANSITIVE"})
        )
        .await,
        (200, json!({"compatibility": "FORWARD_TRANSITIVE"}))
    );
    assert_eq!(
        s.get("/config/incident").await.1,
        json!({"compatibilityLevel": "FORWARD_TRANSITIVE"})
    );
    assert_eq!(
        error(
            &s.put("/config/incident", json!({"compatibility": "SIDEWAYS"}))
                .await
        ),
        (422, 42203)
    );
    assert_eq!(
        error(&s.put("/config", json!({"compatibility": 3})).await),
        (422, 42203)
    );
    assert_eq!(
        s.delete("/config/incident").await,
        (200, json!({"compatibilityLevel": "FORWARD_TRANSITIVE"}))
    );
    assert_eq!(error(&s.get("/config/incident").await), (404, 40408));
    assert_eq!(error(&s.delete("/config/incident").await), (404, 40408));
    assert_eq!(
        s.delete("/config").await.1,
        json!({"compatibilityLevel": "FULL"})
    );
    assert_eq!(
        s.get("/config").await.1,
        json!({"compatibilityLevel": "BACKWARD_TRANSITIVE"})
    );
}

#[tokio::test]
async fn transitive_levels_compare_with_every_version_plain_ones_with_the_latest() {
    let s = serve(&registry_topic().await).await;
    // v1 has a string `id`, v2 drops it, v3 brings `id` back as an int: v3 reads v2's data (the
    // default fills `id`) but not v1's.
    let a = record_schema("Unit", r#"{"name":"id","type":"string"}"#);
    let b = record_schema("Unit", r#"{"name":"other","type":"string","default":""}"#);
    let c = record_schema("Unit", r#"{"name":"id","type":"int","default":0}"#);
    for (subject, level) in [("plain", "BACKWARD"), ("transitive", "BACKWARD_TRANSITIVE")] {
        assert_eq!(
            s.put(
                &format!("/config/{subject}"),
                json!({"compatibility": level})
            )
            .await
            .0,
            200
        );
        s.register(subject, &a).await;
        s.register(subject, &b).await;
    }
    s.register("plain", &c).await;
    let refused = s
        .post("/subjects/transitive/versions", json!({"schema": c}))
        .await;
    assert_eq!(error(&refused), (409, 409));
    assert!(
        refused.1["message"]
            .as_str()
            .unwrap_or_default()
            .contains("version 1"),
        "{refused:?}"
    );
}

#[tokio::test]
async fn soft_then_hard_deletes() {
    let s = serve(&registry_topic().await).await;
    assert_eq!(
        s.put("/config", json!({"compatibility": "NONE"})).await.0,
        200
    );
    let id1 = s.register("incident", &v1()).await;
    let id2 = s.register("incident", &v2()).await;

    assert_eq!(
        s.delete("/subjects/incident/versions/2").await,
        (200, json!(2))
    );
    assert_eq!(s.get("/subjects/incident/versions").await.1, json!([1]));
    assert_eq!(
        s.get("/subjects/incident/versions?deleted=true").await.1,
        json!([1, 2])
    );
    assert_eq!(
        error(&s.get("/subjects/incident/versions/2").await),
        (404, 40402)
    );
    assert_eq!(
        s.get("/subjects/incident/versions/2?deleted=true").await.1["id"],
        id2
    );
    assert_eq!(
        s.get(&format!("/schemas/ids/{id2}")).await.0,
        200,
        "old data stays readable"
    );
    assert_eq!(
        error(&s.post("/subjects/incident", json!({"schema": v2()})).await),
        (404, 40403)
    );
    assert_eq!(
        s.post("/subjects/incident?deleted=true", json!({"schema": v2()}))
            .await
            .1["version"],
        2
    );
    assert_eq!(
        error(&s.delete("/subjects/incident/versions/2").await),
        (404, 40406)
    );
    assert_eq!(
        error(
            &s.delete("/subjects/incident/versions/1?permanent=true")
                .await
        ),
        (404, 40407)
    );
    assert_eq!(
        error(&s.delete("/subjects/incident?permanent=true").await),
        (404, 40405)
    );

    assert_eq!(s.delete("/subjects/incident").await, (200, json!([1])));
    assert_eq!(
        error(&s.get("/subjects/incident/versions").await),
        (404, 40401)
    );
    assert_eq!(error(&s.delete("/subjects/incident").await), (404, 40404));
    assert_eq!(s.get("/subjects").await.1, json!([]));
    assert_eq!(s.get("/subjects?deleted=true").await.1, json!(["incident"]));

    // The same schema again after a soft delete: a new version, the same id.
    assert_eq!(s.register("incident", &v1()).await, id1);
    assert_eq!(s.get("/subjects/incident/versions").await.1, json!([3]));
    assert_eq!(s.delete("/subjects/incident").await.1, json!([3]));
    assert_eq!(
        s.delete("/subjects/incident?permanent=true").await,
        (200, json!([1, 2, 3]))
    );
    assert_eq!(
        error(&s.get("/subjects/incident/versions?deleted=true").await),
        (404, 40401)
    );
    assert_eq!(
        error(&s.get(&format!("/schemas/ids/{id2}")).await),
        (404, 40403)
    );
    assert_eq!(s.get("/subjects?deleted=true").await.1, json!([]));

    // A single version, soft then hard.
    s.register("case", &v1()).await;
    s.register("case", &v2()).await;
    assert_eq!(s.delete("/subjects/case/versions/latest").await.1, json!(2));
    assert_eq!(
        s.delete("/subjects/case/versions/2?permanent=true").await.1,
        json!(2)
    );
    assert_eq!(
        s.get("/subjects/case/versions?deleted=true").await.1,
        json!([1])
    );
}

#[tokio::test]
async fn a_restarted_registry_has_every_id_and_version_unchanged() {
    let topic = registry_topic().await;
    let first = serve(&topic).await;
    assert_eq!(
        first
            .put("/config", json!({"compatibility": "NONE"}))
            .await
            .0,
        200
    );
    assert_eq!(
        first
            .put("/config/b", json!({"compatibility": "FULL"}))
            .await
            .0,
        200
    );
    let mut ids = Vec::new();
    for (subject, schema) in [
        ("a", v1()),
        ("a", v2()),
        ("b", v2()),
        ("a", v3_no_default()),
        ("c", v1()),
    ] {
        ids.push(first.register(subject, &schema).await);
    }
    first.delete("/subjects/a/versions/2").await;
    first.delete("/subjects/c").await;
    first.delete("/subjects/c?permanent=true").await;
    let before = first.snapshot().await;
    drop(first);

    let second = serve(&topic).await;
    assert_eq!(second.snapshot().await, before);
    assert_eq!(
        second.get("/config/b").await.1,
        json!({"compatibilityLevel": "FULL"})
    );
    for (subject, schema, id) in [("a", v1(), ids[0]), ("b", v2(), ids[2])] {
        assert_eq!(second.register(subject, &schema).await, id);
    }
    // A new schema gets a new id, not one in use.
    let fresh = second
        .register(
            "d",
            &record_schema("Fresh", r#"{"name":"x","type":"long"}"#),
        )
        .await;
    assert!(!ids.contains(&fresh), "{fresh} in {ids:?}");
}

#[tokio::test]
async fn two_instances_registering_at_once_agree_on_every_id() {
    let topic = registry_topic().await;
    let one = serve(&topic).await;
    let two = serve(&topic).await;
    assert_eq!(
        one.put("/config", json!({"compatibility": "NONE"})).await.0,
        200
    );

    let schema = |i: usize| record_schema(&format!("Event{i}"), r#"{"name":"at","type":"long"}"#);
    let mut tasks = Vec::new();
    for k in 0..20 {
        // Both instances put all 20 schemas in one subject, in opposite orders, so they keep
        // proposing the same version for different schemas; each schema also goes to a subject
        // of its own from one instance.
        for (n, instance, i) in [(0, &one, k), (1, &two, 19 - k)] {
            let (base, http, schema) = (instance.base.clone(), instance.http.clone(), schema(i));
            let subjects = if i % 2 == n {
                vec!["shared".to_owned(), format!("own{i}")]
            } else {
                vec!["shared".to_owned()]
            };
            tasks.push(tokio::spawn(async move {
                let mut ids = Vec::new();
                for subject in subjects {
                    let response = http
                        .post(format!("{base}/subjects/{subject}/versions"))
                        .json(&json!({ "schema": schema }))
                        .send()
                        .await
                        .expect("request");
                    let status = response.status().as_u16();
                    let body: Value = response.json().await.expect("json");
                    assert_eq!(status, 200, "{subject}: {body}");
                    ids.push(body["id"].as_u64().expect("id"));
                }
                (i, ids)
            }));
        }
    }
    let mut id_of = BTreeMap::new();
    for task in tasks {
        let (i, ids) = task.await.expect("task");
        for id in ids {
            assert_eq!(*id_of.entry(i).or_insert(id), id, "schema {i} got two ids");
        }
    }
    let distinct: std::collections::BTreeSet<_> = id_of.values().collect();
    assert_eq!(distinct.len(), 20, "no id for two schemas: {id_of:?}");

    // Soft deletes rewrite winners' records after the records that lost to them.
    assert_eq!(two.delete("/subjects/shared/versions/3").await.0, 200);
    assert_eq!(one.delete("/subjects/own0").await.0, 200);
    assert_eq!(one.delete("/subjects/own19").await.0, 200);

    let seen_by_one = one.snapshot().await;
    assert_eq!(two.snapshot().await, seen_by_one);
    assert_eq!(
        one.get("/subjects/shared/versions?deleted=true").await.1,
        json!((1..=20).collect::<Vec<_>>())
    );
    for (i, id) in &id_of {
        for s in [&one, &two] {
            assert_eq!(
                s.get(&format!("/schemas/ids/{id}")).await.1,
                json!({ "schema": schema(*i) })
            );
        }
    }
    drop((one, two));
    assert_eq!(
        serve(&topic).await.snapshot().await,
        seen_by_one,
        "a third instance agrees"
    );

    // Compaction keeps only the last record of each key (and drops tombstones in time): the
    // records that lost races must not come back to life then.
    let compacted = compact_into_new_topic(&topic).await;
    assert_eq!(serve(&compacted).await.snapshot().await, seen_by_one);
}

/// Copies `topic` as log compaction would leave it, into a new registry topic.
async fn compact_into_new_topic(topic: &str) -> String {
    let consumer: BaseConsumer = kafka()
        .set("group.id", unique("registry-test"))
        .create()
        .expect("consumer");
    let (_, high) = consumer
        .fetch_watermarks(topic, 0, TIMEOUT)
        .expect("watermarks");
    let mut assignment = rdkafka::TopicPartitionList::new();
    assignment
        .add_partition_offset(topic, 0, rdkafka::Offset::Beginning)
        .expect("partition");
    consumer.assign(&assignment).expect("assign");
    let mut last_of_key: BTreeMap<Vec<u8>, (i64, Option<Vec<u8>>)> = BTreeMap::new();
    let deadline = std::time::Instant::now() + TIMEOUT;
    let mut next = 0;
    while next < high {
        assert!(
            std::time::Instant::now() < deadline,
            "could not read {topic}"
        );
        let Some(message) = consumer.poll(Duration::from_millis(200)) else {
            continue;
        };
        let message = message.expect("message");
        next = message.offset() + 1;
        let key = message.key().expect("registry records have keys").to_vec();
        last_of_key.insert(
            key,
            (message.offset(), message.payload().map(<[u8]>::to_vec)),
        );
    }
    let mut survivors: Vec<_> = last_of_key
        .into_iter()
        .filter_map(|(key, (offset, value))| Some((offset, key, value?)))
        .collect();
    survivors.sort();

    let compacted = registry_topic().await;
    let producer: FutureProducer = kafka()
        .set("enable.idempotence", "true")
        .create()
        .expect("producer");
    for (_, key, value) in &survivors {
        producer
            .send(
                FutureRecord::to(&compacted)
                    .partition(0)
                    .key(&key[..])
                    .payload(&value[..]),
                Timeout::After(TIMEOUT),
            )
            .await
            .expect("produce");
    }
    compacted
}

#[tokio::test]
async fn the_topic_holds_confluents_records_and_odd_records_do_no_harm() {
    let topic = registry_topic().await;
    // Records another registry (or a bad actor) might leave: NOOP, unknown types, garbage, a
    // schema that is not Avro, a key without a value.
    let producer: FutureProducer = kafka().create().expect("producer");
    let odd: [(&[u8], Option<&[u8]>); 5] = [
        (br#"{"keytype":"NOOP","magic":0}"#, None),
        (
            br#"{"keytype":"MODE","subject":null,"magic":0}"#,
            Some(br#"{"mode":"READWRITE"}"#),
        ),
        (b"garbage", Some(b"more garbage")),
        (
            br#"{"keytype":"SCHEMA","subject":"x","version":1,"magic":1}"#,
            Some(br#"{"subject":"x","version":1,"id":1,"schema":"{nope","deleted":false}"#),
        ),
        (
            br#"{"keytype":"DELETE_SUBJECT","subject":"x","magic":0}"#,
            None,
        ),
    ];
    for (key, value) in odd {
        let mut record = FutureRecord::<[u8], [u8]>::to(&topic).partition(0).key(key);
        if let Some(value) = value {
            record = record.payload(value);
        }
        producer
            .send(record, Timeout::After(TIMEOUT))
            .await
            .expect("produce");
    }

    let s = serve(&topic).await;
    let id = s.register("incident", &v1()).await;
    assert_eq!(id, 1, "the unparsable record took no id");
    assert_eq!(s.get("/subjects").await.1, json!(["incident"]));

    // Read the topic back as any Kafka client would.
    let consumer: BaseConsumer = kafka()
        .set("group.id", unique("registry-test"))
        .set("auto.offset.reset", "earliest")
        .create()
        .expect("consumer");
    consumer.subscribe(&[&topic]).expect("subscribe");
    let deadline = std::time::Instant::now() + TIMEOUT;
    loop {
        assert!(
            std::time::Instant::now() < deadline,
            "registration not on the topic"
        );
        let Some(message) = consumer.poll(Duration::from_millis(200)) else {
            continue;
        };
        let message = message.expect("message");
        if message.key()
            == Some(br#"{"keytype":"SCHEMA","subject":"incident","version":1,"magic":1}"#)
        {
            let value: Value =
                serde_json::from_slice(message.payload().expect("value")).expect("json");
            assert_eq!(
                value,
                json!({"subject": "incident", "version": 1, "id": id, "schema": v1(), "deleted": false})
            );
            break;
        }
    }
}

#[tokio::test]
async fn a_missing_topic_or_broker_fails_clearly() {
    let missing = unique("_schemas_missing_");
    let mut quick = config(&missing);
    quick.kafka_timeout = Duration::from_secs(2);
    let err = Registry::start(quick).await.expect_err("no such topic");
    assert!(matches!(err, Error::RegistryTopic { .. }), "{err:?}");
    assert!(err.to_string().contains("does not exist"), "{err}");

    let mut nowhere = config(&missing);
    nowhere.kafka = ClientConfig::new();
    nowhere.kafka.set("bootstrap.servers", "127.0.0.1:1");
    nowhere.kafka_timeout = Duration::from_secs(2);
    let err = Registry::start(nowhere).await.expect_err("no broker");
    assert!(err.to_string().contains("cannot reach broker"), "{err}");
    assert!(err.retryable());
}

#[tokio::test]
async fn the_library_api_matches_the_http_api() {
    let s = serve(&registry_topic().await).await;
    let registered = s.registry.register("lib", &v1()).await.expect("register");
    assert_eq!(
        (registered.version, u64::from(registered.id)),
        (1, s.register("lib", &v1()).await)
    );
    assert_eq!(
        s.registry.schema(registered.id).await.expect("schema"),
        v1()
    );
    let err = s.registry.register("lib", "{").await.expect_err("invalid");
    assert!(matches!(err, Error::InvalidSchema(_)));
    assert!(s.registry.ready().is_ok());
    assert!(format!("{:?}", s.registry).contains(s.registry.topic()));
}
