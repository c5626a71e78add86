//! Confluent Schema Registry's REST API, on axum.
//!
//! Every answer, errors included, is `application/vnd.schemaregistry.v1+json`; errors are
//! `{"error_code": N, "message": "..."}` with Confluent's status and error codes, so Confluent's
//! clients (Java, Python, `schema_registry_converter`) work unchanged. A request body that is not
//! the JSON an endpoint expects is 422 with 42201 (42203 for a config body): clients treat 4xx as
//! final and do not retry it, which is right for a request that can never succeed.

use std::time::Instant;

use axum::{
    Router,
    body::{Body, Bytes},
    extract::{DefaultBodyLimit, MatchedPath, Path, Query, Request, State},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    middleware::{self, Next},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use serde::{Deserialize, Serialize, de::DeserializeOwned};
use serde_json::{Value, json};
use tracing::{debug, warn};

use super::{CompatibilityLevel, Registry, VersionSpec, metrics};
use crate::Error;

/// The media type of every answer.
pub const CONTENT_TYPE: &str = "application/vnd.schemaregistry.v1+json";

/// Request bodies may be sent as any of these (and without a content type).
const BODY_TYPES: [&str; 4] = [
    CONTENT_TYPE,
    "application/vnd.schemaregistry+json",
    "application/json",
    "application/octet-stream",
];

/// Confluent's REST API over `registry`. The binary adds `/metrics` and `/health` and serves it.
pub fn router(registry: Registry) -> Router {
    let limit = registry.inner.max_request_bytes;
    Router::new()
        .route("/", get(|| async { ok(&json!({})) }))
        .route("/schemas/types", get(|| async { ok(&["AVRO"]) }))
        .route("/schemas/ids/{id}", get(schema_by_id))
        .route("/schemas/ids/{id}/schema", get(raw_schema_by_id))
        .route("/schemas/ids/{id}/versions", get(id_versions))
        .route("/schemas/ids/{id}/subjects", get(id_subjects))
        .route("/subjects", get(subjects))
        .route("/subjects/{subject}", post(lookup).delete(delete_subject))
        .route("/subjects/{subject}/versions", get(versions).post(register))
        .route(
            "/subjects/{subject}/versions/{version}",
            get(version).delete(delete_version),
        )
        .route(
            "/subjects/{subject}/versions/{version}/schema",
            get(version_schema),
        )
        .route(
            "/subjects/{subject}/versions/{version}/referencedby",
            get(referenced_by),
        )
        .route(
            "/config",
            get(global_config)
                .put(put_global_config)
                .delete(delete_global_config),
        )
        .route(
            "/config/{subject}",
            get(subject_config)
                .put(put_subject_config)
                .delete(delete_subject_config),
        )
        .route(
            "/compatibility/subjects/{subject}/versions",
            post(compatibility_all),
        )
        .route(
            "/compatibility/subjects/{subject}/versions/{version}",
            post(compatibility_version),
        )
        .route("/mode", get(|| async { ok(&json!({"mode": "READWRITE"})) }))
        .fallback(|| async {
            ApiError::http(StatusCode::NOT_FOUND, 404, "HTTP 404 Not Found".into())
        })
        .method_not_allowed_fallback(|| async {
            ApiError::http(
                StatusCode::METHOD_NOT_ALLOWED,
                405,
                "HTTP 405 Method Not Allowed".into(),
            )
        })
        .layer(DefaultBodyLimit::max(limit))
        .layer(middleware::from_fn(track))
        .with_state(registry)
}

// ---------------------------------------------------------------------------------------------
// Answers and errors

fn respond(status: StatusCode, body: Vec<u8>) -> Response {
    let mut response = (status, body).into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
    response
}

fn ok<T: Serialize + ?Sized>(value: &T) -> Response {
    match serde_json::to_vec(value) {
        Ok(body) => respond(StatusCode::OK, body),
        Err(e) => ApiError::http(
            StatusCode::INTERNAL_SERVER_ERROR,
            50001,
            format!("cannot encode the answer: {e}"),
        )
        .into_response(),
    }
}

/// An error answer: a registry error, or one the HTTP layer itself raises.
#[derive(Debug)]
enum ApiError {
    Registry(Error),
    Http {
        status: StatusCode,
        code: u32,
        message: String,
    },
}

impl ApiError {
    fn http(status: StatusCode, code: u32, message: String) -> ApiError {
        ApiError::Http {
            status,
            code,
            message,
        }
    }
}

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        ApiError::Registry(e)
    }
}

/// Confluent's HTTP status and error code for a registry error.
fn codes(e: &Error) -> (StatusCode, u32) {
    match e {
        Error::SubjectNotFound(_) => (StatusCode::NOT_FOUND, 40401),
        Error::VersionNotFound { .. } => (StatusCode::NOT_FOUND, 40402),
        Error::SchemaIdNotFound(_) | Error::SchemaNotInSubject(_) => (StatusCode::NOT_FOUND, 40403),
        Error::SubjectSoftDeleted(_) => (StatusCode::NOT_FOUND, 40404),
        Error::SubjectNotSoftDeleted(_) => (StatusCode::NOT_FOUND, 40405),
        Error::VersionSoftDeleted { .. } => (StatusCode::NOT_FOUND, 40406),
        Error::VersionNotSoftDeleted { .. } => (StatusCode::NOT_FOUND, 40407),
        Error::SubjectCompatibilityNotConfigured(_) => (StatusCode::NOT_FOUND, 40408),
        Error::IncompatibleSchema { .. } => (StatusCode::CONFLICT, 409),
        Error::InvalidSchema(_) | Error::UnsupportedSchema(_) | Error::InvalidRequest(_) => {
            (StatusCode::UNPROCESSABLE_ENTITY, 42201)
        }
        Error::InvalidVersion(_) => (StatusCode::UNPROCESSABLE_ENTITY, 42202),
        Error::InvalidCompatibilityLevel(_) => (StatusCode::UNPROCESSABLE_ENTITY, 42203),
        Error::RegistryTimeout(_) => (StatusCode::INTERNAL_SERVER_ERROR, 50002),
        _ => (StatusCode::INTERNAL_SERVER_ERROR, 50001),
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code, message) = match self {
            ApiError::Registry(e) => {
                let (status, code) = codes(&e);
                if status.is_server_error() {
                    warn!(error = %e, code, "schema registry request failed");
                }
                (status, code, e.to_string())
            }
            ApiError::Http {
                status,
                code,
                message,
            } => (status, code, message),
        };
        let body = json!({"error_code": code, "message": message});
        respond(status, body.to_string().into_bytes())
    }
}

type Answer = Result<Response, ApiError>;

/// Counts every request by route template and status, and turns the plain-text rejections of
/// axum's extractors (413, 400 for a bad query, ...) into Confluent-style JSON errors.
async fn track(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let route = format!(
        "{} {}",
        request.method(),
        request
            .extensions()
            .get::<MatchedPath>()
            .map_or("unmatched", MatchedPath::as_str)
    );
    let mut response = next.run(request).await;
    let status = response.status();
    let ours = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|t| t == CONTENT_TYPE);
    if (status.is_client_error() || status.is_server_error()) && !ours {
        let body = std::mem::replace(response.body_mut(), Body::empty());
        let text = axum::body::to_bytes(body, 64 * 1024)
            .await
            .map(|b| String::from_utf8_lossy(&b).trim().to_owned())
            .unwrap_or_default();
        let message = if text.is_empty() {
            status.canonical_reason().unwrap_or("error").to_owned()
        } else {
            text
        };
        response = ApiError::http(status, u32::from(status.as_u16()), message).into_response();
    }
    let took = started.elapsed();
    metrics::record_request(&route, status.as_u16(), took);
    debug!(%route, status = status.as_u16(), ?took, "schema registry request");
    response
}

// ---------------------------------------------------------------------------------------------
// Request parts

/// The query parameters any endpoint understands; others (`normalize`, `format`, `fetchMaxId`,
/// `subject`, ...) are accepted and ignored.
#[derive(Debug, Default, Deserialize)]
struct Params {
    deleted: Option<String>,
    permanent: Option<String>,
    verbose: Option<String>,
    #[serde(rename = "defaultToGlobal")]
    default_to_global: Option<String>,
    #[serde(rename = "subjectPrefix")]
    subject_prefix: Option<String>,
}

fn flag(value: &Option<String>) -> bool {
    value
        .as_deref()
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("true"))
}

/// The JSON body, if its content type is one the registry speaks.
fn body<T: DeserializeOwned>(headers: &HeaderMap, bytes: &[u8]) -> Result<T, ApiError> {
    if let Some(content_type) = headers.get(header::CONTENT_TYPE) {
        let essence = content_type
            .to_str()
            .unwrap_or_default()
            .split(';')
            .next()
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase();
        if !BODY_TYPES.contains(&essence.as_str()) {
            return Err(ApiError::http(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                415,
                format!("content type {essence:?} is not supported; send {CONTENT_TYPE}"),
            ));
        }
    }
    serde_json::from_slice(bytes).map_err(|e| {
        Error::InvalidRequest(format!(
            "the request body is not what this endpoint expects: {e}"
        ))
        .into()
    })
}

/// The `{"schema": ..., "schemaType": ..., "references": ...}` body of register, look-up and
/// compatibility requests. Other fields (`metadata`, `ruleSet`, ...) are ignored.
#[derive(Debug, Deserialize)]
struct SchemaRequest {
    schema: String,
    #[serde(rename = "schemaType", default)]
    schema_type: Option<String>,
    #[serde(default)]
    references: Option<Vec<Value>>,
}

fn avro_schema(headers: &HeaderMap, bytes: &[u8]) -> Result<String, ApiError> {
    let request: SchemaRequest = body(headers, bytes)?;
    if let Some(t) = request
        .schema_type
        .as_deref()
        .filter(|t| !t.eq_ignore_ascii_case("AVRO"))
    {
        return Err(Error::UnsupportedSchema(format!(
            "schemaType {t}: only Avro schemas are supported by this registry"
        ))
        .into());
    }
    if request.references.is_some_and(|r| !r.is_empty()) {
        return Err(Error::UnsupportedSchema(
            "schema references are not supported by this registry; inline the referenced types"
                .into(),
        )
        .into());
    }
    Ok(request.schema)
}

fn schema_id(id: &str) -> Result<u32, ApiError> {
    id.trim().parse().map_err(|_| {
        ApiError::http(
            StatusCode::NOT_FOUND,
            40403,
            format!("schema id {id:?} is not a number"),
        )
    })
}

// ---------------------------------------------------------------------------------------------
// Handlers

async fn schema_by_id(State(r): State<Registry>, Path(id): Path<String>) -> Answer {
    let schema = r.schema(schema_id(&id)?).await?;
    Ok(ok(&json!({ "schema": schema })))
}

async fn raw_schema_by_id(State(r): State<Registry>, Path(id): Path<String>) -> Answer {
    let schema = r.schema(schema_id(&id)?).await?;
    Ok(respond(StatusCode::OK, schema.into_bytes()))
}

async fn id_versions(
    State(r): State<Registry>,
    Path(id): Path<String>,
    Query(p): Query<Params>,
) -> Answer {
    let uses = r.schema_uses(schema_id(&id)?, flag(&p.deleted)).await?;
    let uses: Vec<Value> = uses
        .into_iter()
        .map(|(subject, version)| json!({"subject": subject, "version": version}))
        .collect();
    Ok(ok(&uses))
}

async fn id_subjects(
    State(r): State<Registry>,
    Path(id): Path<String>,
    Query(p): Query<Params>,
) -> Answer {
    let mut subjects: Vec<String> = r
        .schema_uses(schema_id(&id)?, flag(&p.deleted))
        .await?
        .into_iter()
        .map(|(subject, _)| subject)
        .collect();
    subjects.dedup();
    Ok(ok(&subjects))
}

async fn subjects(State(r): State<Registry>, Query(p): Query<Params>) -> Answer {
    let mut subjects = r.subjects(flag(&p.deleted)).await?;
    if let Some(prefix) = p.subject_prefix.as_deref() {
        subjects.retain(|s| s.starts_with(prefix));
    }
    Ok(ok(&subjects))
}

async fn lookup(
    State(r): State<Registry>,
    Path(subject): Path<String>,
    Query(p): Query<Params>,
    headers: HeaderMap,
    bytes: Bytes,
) -> Answer {
    let schema = avro_schema(&headers, &bytes)?;
    let found = r.lookup(&subject, &schema, flag(&p.deleted)).await?;
    Ok(ok(&found))
}

async fn register(
    State(r): State<Registry>,
    Path(subject): Path<String>,
    headers: HeaderMap,
    bytes: Bytes,
) -> Answer {
    let schema = avro_schema(&headers, &bytes)?;
    let registered = r.register(&subject, &schema).await?;
    Ok(ok(&json!({ "id": registered.id })))
}

async fn delete_subject(
    State(r): State<Registry>,
    Path(subject): Path<String>,
    Query(p): Query<Params>,
) -> Answer {
    let deleted = r.delete_subject(&subject, flag(&p.permanent)).await?;
    Ok(ok(&deleted))
}

async fn versions(
    State(r): State<Registry>,
    Path(subject): Path<String>,
    Query(p): Query<Params>,
) -> Answer {
    Ok(ok(&r.versions(&subject, flag(&p.deleted)).await?))
}

async fn version(
    State(r): State<Registry>,
    Path((subject, version)): Path<(String, String)>,
    Query(p): Query<Params>,
) -> Answer {
    let spec: VersionSpec = version.parse()?;
    Ok(ok(&r.version(&subject, spec, flag(&p.deleted)).await?))
}

async fn version_schema(
    State(r): State<Registry>,
    Path((subject, version)): Path<(String, String)>,
    Query(p): Query<Params>,
) -> Answer {
    let spec: VersionSpec = version.parse()?;
    let found = r.version(&subject, spec, flag(&p.deleted)).await?;
    Ok(respond(StatusCode::OK, found.schema.into_bytes()))
}

/// No schema references are stored, so nothing refers to any version.
async fn referenced_by(
    State(r): State<Registry>,
    Path((subject, version)): Path<(String, String)>,
) -> Answer {
    let spec: VersionSpec = version.parse()?;
    r.version(&subject, spec, true).await?;
    Ok(ok(&[0_u32; 0]))
}

async fn delete_version(
    State(r): State<Registry>,
    Path((subject, version)): Path<(String, String)>,
    Query(p): Query<Params>,
) -> Answer {
    let spec: VersionSpec = version.parse()?;
    Ok(ok(&r
        .delete_version(&subject, spec, flag(&p.permanent))
        .await?))
}

/// The level in a `PUT /config` body: `{"compatibility": "FULL"}` (or `compatibilityLevel`).
fn level_in(headers: &HeaderMap, bytes: &[u8]) -> Result<CompatibilityLevel, ApiError> {
    let request: Value = body(headers, bytes).map_err(|e| match e {
        ApiError::Registry(Error::InvalidRequest(_)) => {
            Error::InvalidCompatibilityLevel("(the body is not JSON)".into()).into()
        }
        other => other,
    })?;
    let given = request
        .get("compatibility")
        .or_else(|| request.get("compatibilityLevel"));
    match given {
        Some(Value::String(level)) => Ok(level.parse()?),
        Some(other) => Err(Error::InvalidCompatibilityLevel(other.to_string()).into()),
        None => Err(Error::InvalidCompatibilityLevel("(none given)".into()).into()),
    }
}

async fn global_config(State(r): State<Registry>) -> Answer {
    let level = r.compatibility(None, true).await?;
    Ok(ok(&json!({ "compatibilityLevel": level.as_str() })))
}

async fn put_global_config(State(r): State<Registry>, headers: HeaderMap, bytes: Bytes) -> Answer {
    let level = level_in(&headers, &bytes)?;
    r.set_compatibility(None, level).await?;
    Ok(ok(&json!({ "compatibility": level.as_str() })))
}

async fn delete_global_config(State(r): State<Registry>) -> Answer {
    let previous = r.delete_compatibility(None).await?;
    Ok(ok(&json!({ "compatibilityLevel": previous.as_str() })))
}

async fn subject_config(
    State(r): State<Registry>,
    Path(subject): Path<String>,
    Query(p): Query<Params>,
) -> Answer {
    let level = r
        .compatibility(Some(&subject), flag(&p.default_to_global))
        .await?;
    Ok(ok(&json!({ "compatibilityLevel": level.as_str() })))
}

async fn put_subject_config(
    State(r): State<Registry>,
    Path(subject): Path<String>,
    headers: HeaderMap,
    bytes: Bytes,
) -> Answer {
    let level = level_in(&headers, &bytes)?;
    r.set_compatibility(Some(&subject), level).await?;
    Ok(ok(&json!({ "compatibility": level.as_str() })))
}

async fn delete_subject_config(State(r): State<Registry>, Path(subject): Path<String>) -> Answer {
    let previous = r.delete_compatibility(Some(&subject)).await?;
    Ok(ok(&json!({ "compatibilityLevel": previous.as_str() })))
}

fn compatibility_answer(problems: Vec<String>, verbose: bool) -> Response {
    let mut answer = json!({ "is_compatible": problems.is_empty() });
    if verbose {
        answer["messages"] = json!(problems);
    }
    ok(&answer)
}

async fn compatibility_all(
    State(r): State<Registry>,
    Path(subject): Path<String>,
    Query(p): Query<Params>,
    headers: HeaderMap,
    bytes: Bytes,
) -> Answer {
    let schema = avro_schema(&headers, &bytes)?;
    let problems = r.check_compatibility(&subject, None, &schema).await?;
    Ok(compatibility_answer(problems, flag(&p.verbose)))
}

async fn compatibility_version(
    State(r): State<Registry>,
    Path((subject, version)): Path<(String, String)>,
    Query(p): Query<Params>,
    headers: HeaderMap,
    bytes: Bytes,
) -> Answer {
    let spec: VersionSpec = version.parse()?;
    let schema = avro_schema(&headers, &bytes)?;
    let problems = r.check_compatibility(&subject, Some(spec), &schema).await?;
    Ok(compatibility_answer(problems, flag(&p.verbose)))
}
