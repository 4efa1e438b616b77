//! The routes, their OpenAPI description, and how a library error becomes
//! an HTTP status.

// utoipa's `params(...)` expands to paths this lint flags.
#![allow(unused_qualifications)]

use std::sync::Arc;
use std::time::Instant;

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{MatchedPath, Path, Query, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post, put};
use chrono::Utc;
use lectern::{ErrorKind, InboxEvent, Lectern, ListKind, Preferences};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa::{IntoParams, OpenApi, ToSchema};

use crate::App;
use crate::auth::{ConsortiumStaff, Staff};

/// An error as the client sees it: a status and a message that says what
/// to do. A store that failed is 503, so that a sender retries; bad input
/// is 4xx, so that it does not.
#[derive(Debug)]
pub(crate) struct ApiError {
    status: StatusCode,
    message: String,
}

impl ApiError {
    pub(crate) fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            message: message.into(),
        }
    }

    pub(crate) fn forbidden(message: &str) -> ApiError {
        ApiError::new(StatusCode::FORBIDDEN, message)
    }

    pub(crate) fn unauthorized() -> ApiError {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "a valid bearer token is needed: `Authorization: Bearer lct_…`, made with `lectern \
             staff add`",
        )
    }

    pub(crate) fn too_many() -> ApiError {
        ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "too many failed authentications from this address; wait a minute",
        )
    }

    pub(crate) fn internal(message: &str) -> ApiError {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, message)
    }

    pub(crate) fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, message)
    }
}

impl From<lectern::Error> for ApiError {
    fn from(e: lectern::Error) -> ApiError {
        let status = match e.kind() {
            ErrorKind::Invalid => StatusCode::UNPROCESSABLE_ENTITY,
            ErrorKind::NotFound => StatusCode::NOT_FOUND,
            ErrorKind::Denied => StatusCode::FORBIDDEN,
            ErrorKind::Plugin => StatusCode::BAD_GATEWAY,
            ErrorKind::Store => StatusCode::SERVICE_UNAVAILABLE,
            ErrorKind::Config => StatusCode::INTERNAL_SERVER_ERROR,
        };
        // The message names what failed; a store's message may carry a
        // path, which the log keeps and the client does not need.
        if status == StatusCode::SERVICE_UNAVAILABLE {
            tracing::warn!("store error: {e:#}");
            return ApiError::new(status, "the store is unavailable; try again");
        }
        ApiError::new(status, format!("{e:#}"))
    }
}

/// The body of every error.
#[derive(Serialize, ToSchema)]
pub(crate) struct ErrorBody {
    /// What went wrong and what to do.
    error: String,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (
            self.status,
            Json(ErrorBody {
                error: self.message,
            }),
        )
            .into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer"),
            );
        }
        response
    }
}

pub(crate) type ApiResult<T> = Result<T, ApiError>;

/// A query string, refused as JSON with what is wrong, like every other
/// error.
pub(crate) struct Q<T>(pub(crate) T);

impl<T: serde::de::DeserializeOwned, S: Send + Sync> axum::extract::FromRequestParts<S> for Q<T> {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, ApiError> {
        Query::<T>::from_request_parts(parts, state)
            .await
            .map(|q| Q(q.0))
            .map_err(|e| ApiError::bad_request(e.body_text()))
    }
}

/// Path parameters, refused as JSON.
pub(crate) struct P<T>(pub(crate) T);

impl<T: serde::de::DeserializeOwned + Send, S: Send + Sync> axum::extract::FromRequestParts<S>
    for P<T>
{
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, ApiError> {
        Path::<T>::from_request_parts(parts, state)
            .await
            .map(|p| P(p.0))
            .map_err(|e| ApiError::bad_request(e.body_text()))
    }
}

/// Runs `f` on the main library on a blocking thread.
async fn on_library<T: Send + 'static>(
    app: &Arc<App>,
    f: impl FnOnce(&mut Lectern) -> lectern::Result<T> + Send + 'static,
) -> ApiResult<T> {
    let app = app.clone();
    tokio::task::spawn_blocking(move || {
        let mut library = app.library.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut library)
    })
    .await
    .map_err(|_| ApiError::internal("the request's task failed"))?
    .map_err(ApiError::from)
}

/// Commits `event` through the intake library, before the answer.
pub(crate) async fn accept(app: &Arc<App>, event: InboxEvent) -> ApiResult<Json<Accepted>> {
    let app2 = app.clone();
    let accepted = tokio::task::spawn_blocking(move || {
        let mut library = app2.intake.lock().unwrap_or_else(|e| e.into_inner());
        library.accept_event(&event, Utc::now())
    })
    .await
    .map_err(|_| ApiError::internal("the intake task failed"))?;
    match accepted {
        Ok(fresh) => {
            app.metrics
                .event(if fresh { "accepted" } else { "duplicate" });
            Ok(Json(Accepted { duplicate: !fresh }))
        }
        Err(e) => {
            app.metrics.event("refused");
            Err(e.into())
        }
    }
}

/// An event was committed.
#[derive(Serialize, ToSchema)]
pub(crate) struct Accepted {
    /// The same source and id was accepted before; nothing changed.
    duplicate: bool,
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Lectern",
        description = "Customer relationship management for libraries: the service an ILS \
                       connects to. Every request but the health checks carries a bearer token \
                       made with `lectern staff add`; its role is the request's actor.",
        license(name = "Apache-2.0")
    ),
    paths(
        healthz, readyz, openapi, push_event, sync_patrons, delete_patron, segments, consortium_segments, key_readers, lapsed, export_patron,
        erase_patron, get_preferences, put_preferences, outbox, plugins, configure_plugin,
        jobs, start_job, inbox, registrations, survey_report, campaign_report, list_campaigns, define_campaign,
        remove_campaign, crate::ils::koha, crate::ils::folio_pubsub,
        crate::ils::folio_envelope, crate::ils::folio_loan_event, crate::ils::folio_request_event,
        crate::ils::alma_challenge, crate::ils::alma,
        crate::ils::evergreen
    ),
    components(schemas(
        ErrorBody, Accepted, PluginValue, PreferencesBody, ReportFormat, RegistrationsFormat,
        SurveyGroup, TableFormat, crate::schemas::PubsubType,
        crate::schemas::SyncFormat
    )),
    modifiers(&Bearer)
)]
/// The OpenAPI document, served at `/v1/openapi.json`.
pub struct ApiDoc;

struct Bearer;

impl utoipa::Modify for Bearer {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

pub(crate) fn router(app: Arc<App>) -> Router {
    let limit = app.rules.body_limit;
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/v1/openapi.json", get(openapi))
        .route("/v1/events", post(push_event))
        .route("/v1/reports/segments", get(segments))
        .route("/v1/consortium/segments", get(consortium_segments))
        .route("/v1/reports/key-readers", get(key_readers))
        .route("/v1/reports/lapsed", get(lapsed))
        .route("/v1/patrons/sync", post(sync_patrons))
        .route("/v1/patrons/{id}", axum::routing::delete(delete_patron))
        .route("/v1/patrons/{id}/export", get(export_patron))
        .route("/v1/patrons/{id}/erase", post(erase_patron))
        .route(
            "/v1/patrons/{id}/preferences",
            get(get_preferences).put(put_preferences),
        )
        .route("/v1/outbox", get(outbox))
        .route("/v1/inbox", get(inbox))
        .route("/v1/plugins", get(plugins))
        .route("/v1/plugins/{id}/config/{key}", put(configure_plugin))
        .route("/v1/jobs", get(jobs))
        .route("/v1/jobs/{job}", post(start_job))
        .route("/v1/registrations", get(registrations))
        .route("/v1/reports/survey/{id}", get(survey_report))
        .route("/v1/reports/campaign/{id}", get(campaign_report))
        .route("/v1/campaigns", get(list_campaigns))
        .route(
            "/v1/campaigns/{id}",
            put(define_campaign).delete(remove_campaign),
        )
        .merge(crate::ils::routes())
        .merge(crate::pages::routes())
        .layer(axum::middleware::from_fn_with_state(app.clone(), observe))
        .layer(tower_http::limit::RequestBodyLimitLayer::new(limit))
        // axum's own extractors stop at 2 MiB unless told the library's
        // limit.
        .layer(axum::extract::DefaultBodyLimit::max(limit))
        .with_state(app)
}

/// Counts and times every request by its route, never by its path, which
/// may hold a patron's id.
async fn observe(State(app): State<Arc<App>>, request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched".to_string(), |m| m.as_str().to_string());
    let started = Instant::now();
    let response = next.run(request).await;
    app.metrics.request(
        &route,
        response.status().as_u16(),
        started.elapsed().as_secs_f64(),
    );
    response
}

/// The process is up.
#[utoipa::path(get, path = "/healthz", responses((status = 200, description = "Up", body = String)))]
async fn healthz() -> &'static str {
    "ok"
}

/// The store answers: the service can take work.
#[utoipa::path(get, path = "/readyz", responses(
    (status = 200, description = "Ready", body = String),
    (status = 503, description = "The store does not answer", body = ErrorBody)
))]
async fn readyz(State(app): State<Arc<App>>) -> ApiResult<&'static str> {
    // Asked of the intake side, which a long job never holds: ready means
    // events are taken.
    let app = app.clone();
    tokio::task::spawn_blocking(move || {
        let intake = app.intake.lock().unwrap_or_else(|e| e.into_inner());
        intake.inbox_stats()
    })
    .await
    .map_err(|_| ApiError::internal("the readiness check failed"))??;
    Ok("ready")
}

async fn metrics(State(app): State<Arc<App>>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        app.metrics.render(),
    )
}

/// This document.
#[utoipa::path(get, path = "/v1/openapi.json", responses((status = 200, description = "OpenAPI 3.1", body = Object)))]
async fn openapi() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}

/// An event in Lectern's own shape, as it is read; `schemas::Event`
/// describes it.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct EventBody {
    /// The sender's id for the event: the same id is accepted once.
    id: String,
    /// What happened, in the sender's words.
    kind: String,
    /// When it happened (RFC 3339).
    at: chrono::DateTime<Utc>,
    /// The patron's id in the ILS; absent for an anonymised event.
    patron: Option<String>,
    /// The change to the records.
    change: Option<lectern::Circulation>,
}

/// Push one event (the `ils` role). It is committed before the answer;
/// the scheduler processes it.
#[utoipa::path(post, path = "/v1/events", request_body = crate::schemas::Event,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Committed", body = Accepted),
        (status = 400, description = "Not an event", body = ErrorBody),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 429, description = "Too many failed authentications from this address", body = ErrorBody),
        (status = 403, description = "Not the ils role", body = ErrorBody),
        (status = 422, description = "An unusable field", body = ErrorBody),
        (status = 503, description = "The store is unavailable; send it again", body = ErrorBody)
    ))]
async fn push_event(
    State(app): State<Arc<App>>,
    staff: Staff,
    body: Bytes,
) -> ApiResult<Json<Accepted>> {
    staff.ils()?;
    let e: EventBody = parse_json(&body)?;
    accept(
        &app,
        InboxEvent {
            // Apart from the adapters' sources (`koha`, `folio`, …), so
            // that an account cannot pre-empt an adapter's event ids.
            source: format!("api:{}", staff.0.name),
            id: e.id,
            kind: e.kind,
            at: e.at,
            patron: e.patron,
            change: e.change,
        },
    )
    .await
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct SyncQuery {
    /// The body's format: `koha` (a list from Koha's `/api/v1/patrons`),
    /// `folio` (users), `csv` (Lectern's patrons CSV) or `koha-csv`.
    format: crate::schemas::SyncFormat,
    /// Write nothing if any record is bad.
    strict: Option<bool>,
}

/// Patrons upserted from the ILS (the `ils` role), by the rules of an
/// import: idempotent, each bad record skipped and reported with its
/// place and field, or with `strict` nothing written.
#[utoipa::path(post, path = "/v1/patrons/sync", params(SyncQuery),
    request_body(
        description = "Koha's patron list or FOLIO's users as JSON, or Lectern's or Koha's patron CSV",
        content((Object = "application/json"), (String = "text/csv"))
    ),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "What was written and what was skipped, record by record", body = Object),
        (status = 400, description = "An unknown format", body = ErrorBody),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 429, description = "Too many failed authentications from this address", body = ErrorBody),
        (status = 403, description = "Not the ils role", body = ErrorBody),
        (status = 422, description = "Strict, and a record is bad: nothing was written", body = ErrorBody),
        (status = 503, description = "The store is unavailable; send it again", body = ErrorBody)
    ))]
async fn sync_patrons(
    State(app): State<Arc<App>>,
    staff: Staff,
    Q(q): Q<SyncQuery>,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    staff.ils()?;
    let format = match q.format {
        crate::schemas::SyncFormat::Koha => lectern::Format::Koha,
        crate::schemas::SyncFormat::Folio => lectern::Format::Folio,
        crate::schemas::SyncFormat::Csv => lectern::Format::Csv,
        crate::schemas::SyncFormat::KohaCsv => lectern::Format::KohaCsv,
    };
    let strict = q.strict.unwrap_or(false);
    on_library(&app, move |l| {
        let options = lectern::ImportOptions {
            strict,
            clock: l.config().notify.clock,
            ..Default::default()
        };
        let r = l.import_body(format, &body, options)?;
        Ok(json!({
            "imported": r.written.imported,
            "updated": r.written.updated,
            "withheld_erased": r.withheld_erased,
            "impossible_dates": r.impossible_dates,
            // Where in the body, not where on this machine.
            "skipped": r.skipped.iter().map(|s| json!({
                "record": s.record,
                "line": s.line,
                "field": s.field,
                "reason": s.reason,
            })).collect::<Vec<_>>(),
        }))
    })
    .await
    .map(Json)
}

/// A patron the ILS deleted (the `ils` role): erased as an erasure is,
/// with a tombstone so that a later sync does not bring them back.
#[utoipa::path(delete, path = "/v1/patrons/{id}",
    params(("id" = String, Path, description = "The patron's id in the ILS")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "What was erased", body = Object),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 429, description = "Too many failed authentications from this address", body = ErrorBody),
        (status = 403, description = "Not the ils role", body = ErrorBody),
        (status = 404, description = "No such patron, or erased already", body = ErrorBody)
    ))]
async fn delete_patron(
    State(app): State<Arc<App>>,
    staff: Staff,
    P(id): P<String>,
) -> ApiResult<Json<Value>> {
    staff.ils()?;
    let source = staff.0.name.clone();
    on_library(&app, move |l| {
        // The ILS reads nothing: not even how much was held about them.
        l.erase_deleted_patron(&id, &source)?;
        Ok(json!({ "erased": true }))
    })
    .await
    .map(Json)
}

/// Parses a JSON body, with an error that says where it is wrong. A
/// number written with a zero fraction (`27.0`) is the integer JSON Schema
/// says it is.
pub(crate) fn parse_json<T: serde::de::DeserializeOwned>(body: &[u8]) -> ApiResult<T> {
    let mut value: Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("the body is not JSON: {e}")))?;
    integral(&mut value);
    serde_path_to_error::deserialize(value)
        .map_err(|e| ApiError::bad_request(format!("the body at `{}`: {}", e.path(), e.inner())))
}

fn integral(v: &mut Value) {
    match v {
        Value::Number(n) => {
            if let Some(f) = n.as_f64().filter(|f| n.is_f64() && f.fract() == 0.0)
                && f.abs() < 9.0e15
            {
                *v = Value::from(f as i64);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(integral),
        Value::Object(map) => map.values_mut().for_each(integral),
        _ => {}
    }
}

/// Refuses a count above `max`, which the document gives as the maximum.
fn at_most(name: &str, value: Option<usize>, max: usize) -> ApiResult<Option<usize>> {
    match value {
        Some(v) if v > max => Err(ApiError::bad_request(format!(
            "{name} = {v}: give at most {max}"
        ))),
        other => Ok(other),
    }
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct SegmentsQuery {
    /// The scorer whose latest run to use.
    scorer: Option<String>,
    /// The smallest group to show: at least the library's floor.
    #[param(minimum = 1, maximum = 1000000)]
    k: Option<usize>,
    /// JSON (the default) or a self-contained HTML page.
    format: Option<ReportFormat>,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct ListQuery {
    /// The scorer whose latest run to use.
    scorer: Option<String>,
    /// How many readers.
    #[param(minimum = 0, maximum = 10000)]
    top: Option<usize>,
    /// JSON (the default) or a self-contained HTML page.
    format: Option<ReportFormat>,
}

/// How a report is rendered.
#[derive(Deserialize, ToSchema, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
enum ReportFormat {
    Json,
    Html,
}

fn is_html(format: Option<ReportFormat>) -> bool {
    format == Some(ReportFormat::Html)
}

fn render<T: Serialize>(value: &T, html: Option<String>) -> Response {
    match html {
        Some(page) => Html(page).into_response(),
        None => Json(value).into_response(),
    }
}

/// Readers per segment, branch and category, as the token's role may see
/// them, with groups under k hidden.
#[utoipa::path(get, path = "/v1/reports/segments", params(SegmentsQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The report, as JSON or HTML",
            content((Object = "application/json"), (String = "text/html"))),
        (status = 400, description = "A bad parameter", body = ErrorBody),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 429, description = "Too many failed authentications from this address", body = ErrorBody),
        (status = 403, description = "The role may not, or k is below the floor", body = ErrorBody),
        (status = 404, description = "No run of the scorer", body = ErrorBody)
    ))]
async fn segments(
    State(app): State<Arc<App>>,
    staff: Staff,
    Q(q): Q<SegmentsQuery>,
) -> ApiResult<Response> {
    let role = staff.reader()?.to_string();
    let html = is_html(q.format);
    at_most("k", q.k, 1_000_000)?;
    let scorer = q.scorer.clone().unwrap_or_else(|| "engagement".into());
    let report = on_library(&app, move |l| {
        let k = q.k.unwrap_or(lectern::DEFAULT_K.max(l.config().k_floor));
        l.segment_report(&scorer, k, &role)
    })
    .await?;
    let page = html.then(|| report.to_html());
    Ok(render(&report, page))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct ConsortiumQuery {
    /// The scorer whose published runs to count.
    scorer: Option<String>,
    /// The smallest count to show: at least the library's floor.
    #[param(minimum = 1, maximum = 1000000)]
    k: Option<usize>,
}

/// Readers per member library and segment across the consortium, from
/// what each member published, with counts under k hidden and the counts
/// that would give them away hidden too. Only a consortium token (`lectern
/// consortium staff add`) reads it; a library's token is refused.
#[utoipa::path(get, path = "/v1/consortium/segments", params(ConsortiumQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The table", content((Object = "application/json"))),
        (status = 400, description = "A bad parameter", body = ErrorBody),
        (status = 404, description = "The library's store belongs to no consortium (a SQLite file)", body = ErrorBody),
        (status = 401, description = "No valid consortium token", body = ErrorBody),
        (status = 403, description = "k is below the floor", body = ErrorBody),
        (status = 429, description = "Too many failed authentications from this address", body = ErrorBody)
    ))]
async fn consortium_segments(
    State(app): State<Arc<App>>,
    _staff: ConsortiumStaff,
    Q(q): Q<ConsortiumQuery>,
) -> ApiResult<Response> {
    at_most("k", q.k, 1_000_000)?;
    let scorer = q.scorer.unwrap_or_else(|| "engagement".into());
    let floor = app.k_floor;
    let k = q.k.unwrap_or(lectern::DEFAULT_K.max(floor));
    let app2 = app.clone();
    let report =
        tokio::task::spawn_blocking(move || app2.on_consortium(|c| c.report(&scorer, k, floor)))
            .await
            .map_err(|_| ApiError::internal("the request's task failed"))?
            .map_err(ApiError::from)?;
    Ok(Json(report).into_response())
}

async fn list(app: Arc<App>, staff: Staff, q: ListQuery, kind: ListKind) -> ApiResult<Response> {
    let role = staff.reader()?.to_string();
    let html = is_html(q.format);
    let (default_scorer, default_top) = match kind {
        ListKind::KeyReaders => ("key-readers", 20),
        ListKind::Lapsed => ("engagement", 50),
    };
    let top = at_most("top", q.top, 10_000)?.unwrap_or(default_top);
    let scorer = q.scorer.unwrap_or_else(|| default_scorer.into());
    let list = on_library(&app, move |l| l.reader_list(kind, &scorer, top, &role)).await?;
    let page = html.then(|| list.to_html());
    Ok(render(&list, page))
}

/// The key readers (重点读者), each shown as far as the role may see them.
#[utoipa::path(get, path = "/v1/reports/key-readers", params(ListQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The list, as JSON or HTML",
            content((Object = "application/json"), (String = "text/html"))),
        (status = 400, description = "A bad parameter", body = ErrorBody),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 429, description = "Too many failed authentications from this address", body = ErrorBody),
        (status = 403, description = "The role may not", body = ErrorBody),
        (status = 404, description = "No run of the scorer", body = ErrorBody)
    ))]
async fn key_readers(
    State(app): State<Arc<App>>,
    staff: Staff,
    Q(q): Q<ListQuery>,
) -> ApiResult<Response> {
    list(app, staff, q, ListKind::KeyReaders).await
}

/// The readers to win back, most urgent segment first.
#[utoipa::path(get, path = "/v1/reports/lapsed", params(ListQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The list, as JSON or HTML",
            content((Object = "application/json"), (String = "text/html"))),
        (status = 400, description = "A bad parameter", body = ErrorBody),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 429, description = "Too many failed authentications from this address", body = ErrorBody),
        (status = 403, description = "The role may not", body = ErrorBody),
        (status = 404, description = "No run of the scorer", body = ErrorBody)
    ))]
async fn lapsed(
    State(app): State<Arc<App>>,
    staff: Staff,
    Q(q): Q<ListQuery>,
) -> ApiResult<Response> {
    list(app, staff, q, ListKind::Lapsed).await
}

/// Everything stored about one patron and every read of their data: the
/// only place the `patron-export` purpose exists.
#[utoipa::path(get, path = "/v1/patrons/{id}/export",
    params(("id" = String, Path, description = "The patron's id in the ILS")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The export", body = Object),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 429, description = "Too many failed authentications from this address", body = ErrorBody),
        (status = 403, description = "The role may not", body = ErrorBody),
        (status = 404, description = "No such patron", body = ErrorBody)
    ))]
async fn export_patron(
    State(app): State<Arc<App>>,
    staff: Staff,
    P(id): P<String>,
) -> ApiResult<Json<Value>> {
    let role = staff.reader()?.to_string();
    on_library(&app, move |l| {
        let export = l.export_patron(&id, Utc::now().date_naive(), &role)?;
        Ok(serde_json::to_value(export).unwrap_or_default())
    })
    .await
    .map(Json)
}

/// Erases one patron and everything stored about them.
#[utoipa::path(post, path = "/v1/patrons/{id}/erase",
    params(("id" = String, Path, description = "The patron's id in the ILS")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "What was erased", body = Object),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 429, description = "Too many failed authentications from this address", body = ErrorBody),
        (status = 403, description = "The role may not", body = ErrorBody),
        (status = 404, description = "No such patron", body = ErrorBody)
    ))]
async fn erase_patron(
    State(app): State<Arc<App>>,
    staff: Staff,
    P(id): P<String>,
) -> ApiResult<Json<Value>> {
    let role = staff.reader()?.to_string();
    on_library(&app, move |l| {
        let erased = l.erase_patron(&id, &role)?;
        Ok(serde_json::to_value(erased).unwrap_or_default())
    })
    .await
    .map(Json)
}

/// A patron's messaging preferences.
#[utoipa::path(get, path = "/v1/patrons/{id}/preferences",
    params(("id" = String, Path, description = "The patron's id in the ILS")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The preferences", body = Object),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 429, description = "Too many failed authentications from this address", body = ErrorBody),
        (status = 403, description = "The role may not", body = ErrorBody),
        (status = 404, description = "No such patron", body = ErrorBody)
    ))]
async fn get_preferences(
    State(app): State<Arc<App>>,
    staff: Staff,
    P(id): P<String>,
) -> ApiResult<Json<Preferences>> {
    let role = staff.reader()?.to_string();
    on_library(&app, move |l| l.preferences_as(&id, &role))
        .await
        .map(Json)
}

/// A patron's messaging preferences, as the API takes them: what
/// `lectern::Preferences` reads, every field optional.
#[derive(Deserialize, ToSchema)]
#[allow(dead_code)]
#[schema(as = Preferences)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub(crate) struct PreferencesBody {
    /// Days of notice before a due date; absent or null for the
    /// library's default.
    #[schema(minimum = 0, maximum = 30)]
    notice_days: Option<u32>,
    /// One message a day per channel.
    #[serde(default)]
    digest: bool,
    /// Channels the patron does not want to be reached on.
    #[serde(default)]
    opted_out: Vec<ChannelName>,
    /// No marketing, whatever the ILS says.
    #[serde(default)]
    no_marketing: bool,
}

/// A delivery channel.
#[derive(Deserialize, ToSchema)]
#[allow(dead_code)]
#[serde(rename_all = "lowercase")]
enum ChannelName {
    Email,
    Sms,
    Webhook,
    Print,
}

/// Replaces a patron's messaging preferences; queued messages they no
/// longer want are cancelled at once.
#[utoipa::path(put, path = "/v1/patrons/{id}/preferences",
    params(("id" = String, Path, description = "The patron's id in the ILS")),
    request_body = PreferencesBody,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "How many queued messages were cancelled", body = Object),
        (status = 400, description = "Not preferences", body = ErrorBody),
        (status = 422, description = "A value out of range", body = ErrorBody),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 429, description = "Too many failed authentications from this address", body = ErrorBody),
        (status = 403, description = "The role may not", body = ErrorBody),
        (status = 404, description = "No such patron", body = ErrorBody)
    ))]
async fn put_preferences(
    State(app): State<Arc<App>>,
    staff: Staff,
    P(id): P<String>,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    let role = staff.reader()?.to_string();
    let prefs: Preferences = parse_json(&body)?;
    on_library(&app, move |l| {
        let cancelled = l.set_preferences_as(&id, &prefs, &role)?;
        Ok(json!({ "cancelled": cancelled }))
    })
    .await
    .map(Json)
}

/// The outbox: messages per channel and state, no patron in them.
#[utoipa::path(get, path = "/v1/outbox",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Counts per channel and state", body = [Object]),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 429, description = "Too many failed authentications from this address", body = ErrorBody),
        (status = 403, description = "The role may not", body = ErrorBody)
    ))]
async fn outbox(State(app): State<Arc<App>>, staff: Staff) -> ApiResult<Json<Value>> {
    staff.reader()?;
    on_library(&app, |l| {
        Ok(serde_json::to_value(l.outbox_stats()?).unwrap_or_default())
    })
    .await
    .map(Json)
}

/// The inbox: events by state.
#[utoipa::path(get, path = "/v1/inbox",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Counts by state", body = Object),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 403, description = "The ils role reads nothing", body = ErrorBody)
    ))]
async fn inbox(State(app): State<Arc<App>>, staff: Staff) -> ApiResult<Json<Value>> {
    staff.reader()?;
    on_library(&app, |l| {
        Ok(serde_json::to_value(l.inbox_stats()?).unwrap_or_default())
    })
    .await
    .map(Json)
}

/// The installed plugins.
#[utoipa::path(get, path = "/v1/plugins",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Installed plugins", body = [Object]),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 429, description = "Too many failed authentications from this address", body = ErrorBody),
        (status = 403, description = "The role may not", body = ErrorBody)
    ))]
async fn plugins(State(app): State<Arc<App>>, staff: Staff) -> ApiResult<Json<Value>> {
    staff.reader()?;
    on_library(&app, |l| {
        Ok(serde_json::to_value(l.installed()?).unwrap_or_default())
    })
    .await
    .map(Json)
}

/// A configuration value, or null for the plugin's default.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct PluginValue {
    /// The value, checked against the plugin's schema.
    value: Option<String>,
}

/// Sets one configuration key of an installed plugin (the
/// `administrator` role).
#[utoipa::path(put, path = "/v1/plugins/{id}/config/{key}",
    params(
        ("id" = String, Path, description = "The installed plugin"),
        ("key" = String, Path, description = "The configuration key")
    ),
    request_body = PluginValue,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The value as the plugin will read it", body = Object),
        (status = 400, description = "Not a value", body = ErrorBody),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 429, description = "Too many failed authentications from this address", body = ErrorBody),
        (status = 403, description = "The role may not", body = ErrorBody),
        (status = 404, description = "No such plugin", body = ErrorBody),
        (status = 422, description = "The schema refuses the value", body = ErrorBody)
    ))]
async fn configure_plugin(
    State(app): State<Arc<App>>,
    staff: Staff,
    P((id, key)): P<(String, String)>,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    if staff.reader()? != "administrator" {
        return Err(ApiError::forbidden(
            "only the administrator role configures plugins",
        ));
    }
    let v: PluginValue = parse_json(&body)?;
    on_library(&app, move |l| {
        let set = l.configure_plugin(&id, &key, v.value.as_deref())?;
        Ok(json!({ "id": id, "key": key, "value": set }))
    })
    .await
    .map(Json)
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct JobsQuery {
    /// Only this job.
    job: Option<String>,
    /// How many runs, newest first.
    #[param(minimum = 0, maximum = 1000)]
    limit: Option<usize>,
}

/// The job history, newest first.
#[utoipa::path(get, path = "/v1/jobs", params(JobsQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Job runs", body = [Object]),
        (status = 400, description = "A bad parameter", body = ErrorBody),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 429, description = "Too many failed authentications from this address", body = ErrorBody),
        (status = 403, description = "The role may not", body = ErrorBody)
    ))]
async fn jobs(
    State(app): State<Arc<App>>,
    staff: Staff,
    Q(q): Q<JobsQuery>,
) -> ApiResult<Json<Value>> {
    staff.reader()?;
    let limit = at_most("limit", q.limit, 1000)?.unwrap_or(50);
    on_library(&app, move |l| {
        let runs = l.job_runs(q.job.as_deref(), limit)?;
        Ok(serde_json::to_value(runs).unwrap_or_default())
    })
    .await
    .map(Json)
}

/// Runs a job now: `score` (a scoring run), `notify`, `deliver`,
/// `retention` or `inbox`. It runs after the job in flight; its outcome
/// is in the history.
#[utoipa::path(post, path = "/v1/jobs/{job}",
    params(("job" = String, Path, description = "sync, score, notify, deliver, retention or inbox")),
    security(("bearer" = [])),
    responses(
        (status = 202, description = "Started", body = Object),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 429, description = "Too many failed authentications from this address", body = ErrorBody),
        (status = 403, description = "The role may not", body = ErrorBody),
        (status = 404, description = "No such job", body = ErrorBody)
    ))]
async fn start_job(
    State(app): State<Arc<App>>,
    staff: Staff,
    P(job): P<String>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    if staff.reader()? != "administrator" {
        return Err(ApiError::forbidden(
            "only the administrator role starts jobs",
        ));
    }
    let Some(job) = crate::scheduler::JOBS.iter().find(|j| **j == job) else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!(
                "no job `{job}`; the jobs are: {}",
                crate::scheduler::JOBS.join(", ")
            ),
        ));
    };
    let app2 = app.clone();
    tokio::task::spawn_blocking(move || {
        if let Err(e) = crate::scheduler::run(&app2, job) {
            tracing::warn!("job {job} failed: {e}");
        }
    });
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({ "job": job, "state": "started" })),
    ))
}

/// A header's value as text.
pub(crate) fn header_text<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name)?.to_str().ok()
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct RegistrationsQuery {
    /// JSON (the default), or `koha-csv`: the verified registrations as
    /// Koha's patron import (Tools → Import patrons) reads them.
    format: Option<RegistrationsFormat>,
}

/// How registrations are listed.
#[derive(Deserialize, ToSchema, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
enum RegistrationsFormat {
    Json,
    KohaCsv,
}

/// The readers who registered on the web and have no card yet, as the
/// token's role may see names and contacts; audited.
#[utoipa::path(get, path = "/v1/registrations", params(RegistrationsQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The registrations, as JSON or Koha's patron-import CSV",
            content(([Object] = "application/json"), (String = "text/csv"))),
        (status = 400, description = "A bad parameter", body = ErrorBody),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 429, description = "Too many failed authentications from this address", body = ErrorBody),
        (status = 403, description = "The role may not see names and contacts", body = ErrorBody)
    ))]
async fn registrations(
    State(app): State<Arc<App>>,
    staff: Staff,
    Q(q): Q<RegistrationsQuery>,
) -> ApiResult<Response> {
    let role = staff.reader()?.to_string();
    let list = on_library(&app, move |l| l.registrations(&role)).await?;
    Ok(match q.format {
        Some(RegistrationsFormat::KohaCsv) => csv_response(lectern::koha_patron_csv(&list)),
        _ => Json(list).into_response(),
    })
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct SurveyQuery {
    /// Group by `category` or `segment`; everyone together by default.
    by: Option<SurveyGroup>,
    /// The smallest group to show: at least the library's floor.
    #[param(minimum = 1, maximum = 1000000)]
    k: Option<usize>,
    /// `json` (the default), `csv` or `html`.
    format: Option<TableFormat>,
    /// The language of questions and options: `en` (the default) or `zh-CN`.
    lang: Option<String>,
}

/// How survey answers are grouped.
#[derive(Deserialize, ToSchema, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
enum SurveyGroup {
    All,
    Category,
    Segment,
}

/// How a survey's results or a campaign's outcome is rendered.
#[derive(Deserialize, ToSchema, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
enum TableFormat {
    Json,
    Csv,
    Html,
}

/// A survey's results per question, and per category or segment, with
/// groups of fewer than k readers withheld.
#[utoipa::path(get, path = "/v1/reports/survey/{id}", params(("id" = String, Path, description = "The survey's id"), SurveyQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The results, as JSON, CSV or HTML",
            content((Object = "application/json"), (String = "text/csv"), (String = "text/html"))),
        (status = 400, description = "A bad parameter", body = ErrorBody),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 429, description = "Too many failed authentications from this address", body = ErrorBody),
        (status = 403, description = "The role may not, or k is below the floor", body = ErrorBody),
        (status = 404, description = "No such survey", body = ErrorBody)
    ))]
async fn survey_report(
    State(app): State<Arc<App>>,
    staff: Staff,
    P(id): P<String>,
    Q(q): Q<SurveyQuery>,
) -> ApiResult<Response> {
    let role = staff.reader()?.to_string();
    at_most("k", q.k, 1_000_000)?;
    let by = match q.by {
        None | Some(SurveyGroup::All) => lectern::GroupBy::All,
        Some(SurveyGroup::Category) => lectern::GroupBy::Category,
        Some(SurveyGroup::Segment) => lectern::GroupBy::Segment,
    };
    let lang = lectern::page_locale(q.lang.as_deref());
    let results = on_library(&app, move |l| {
        let k = q.k.unwrap_or(lectern::DEFAULT_K.max(l.config().k_floor));
        l.survey_results(&id, by, k, &role, lang)
    })
    .await?;
    Ok(match q.format {
        Some(TableFormat::Csv) => csv_response(results.to_csv()),
        Some(TableFormat::Html) => Html(results.to_html()).into_response(),
        _ => Json(results).into_response(),
    })
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct CampaignQuery {
    /// The day to report as of, `YYYY-MM-DD` [default: today].
    as_of: Option<chrono::NaiveDate>,
    /// The smallest group to show: at least the library's floor.
    #[param(minimum = 1, maximum = 1000000)]
    k: Option<usize>,
    /// `json` (the default), `csv` or `html`.
    format: Option<TableFormat>,
}

/// A campaign's outcome: the share of messaged readers who borrowed,
/// visited or renewed within its window, against the holdout, with the
/// difference and its 95% interval.
#[utoipa::path(get, path = "/v1/reports/campaign/{id}", params(("id" = String, Path, description = "The campaign's id"), CampaignQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The outcome, as JSON, CSV or HTML",
            content((Object = "application/json"), (String = "text/csv"), (String = "text/html"))),
        (status = 400, description = "A bad parameter", body = ErrorBody),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 429, description = "Too many failed authentications from this address", body = ErrorBody),
        (status = 403, description = "The role may not, or k is below the floor", body = ErrorBody),
        (status = 404, description = "No such campaign", body = ErrorBody)
    ))]
async fn campaign_report(
    State(app): State<Arc<App>>,
    staff: Staff,
    P(id): P<String>,
    Q(q): Q<CampaignQuery>,
) -> ApiResult<Response> {
    let role = staff.reader()?.to_string();
    at_most("k", q.k, 1_000_000)?;
    let outcome = on_library(&app, move |l| {
        let k = q.k.unwrap_or(lectern::DEFAULT_K.max(l.config().k_floor));
        let as_of = q
            .as_of
            .unwrap_or_else(|| lectern::local_day(&l.config().notify, Utc::now()));
        l.campaign_outcome(&id, as_of, k, &role)
    })
    .await?;
    Ok(match q.format {
        Some(TableFormat::Csv) => csv_response(outcome.to_csv()),
        Some(TableFormat::Html) => Html(outcome.to_html()).into_response(),
        _ => Json(outcome).into_response(),
    })
}

/// The campaigns the library runs: from files, and defined here.
#[utoipa::path(get, path = "/v1/campaigns",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The campaigns", body = [Object]),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 429, description = "Too many failed authentications from this address", body = ErrorBody),
        (status = 403, description = "The role may not", body = ErrorBody)
    ))]
async fn list_campaigns(State(app): State<Arc<App>>, staff: Staff) -> ApiResult<Json<Value>> {
    staff.reader()?;
    let list = on_library(&app, |l| l.campaigns()).await?;
    Ok(Json(serde_json::to_value(list).unwrap_or_default()))
}

/// Defines or redefines a campaign (the `administrator` role): its TOML,
/// as a campaign file holds it, with the path's id.
#[utoipa::path(put, path = "/v1/campaigns/{id}",
    params(("id" = String, Path, description = "The campaign's id, as its TOML gives it")),
    request_body(content = String, content_type = "text/plain",
        description = "The campaign in TOML, as a file under `[readers] campaigns` would hold it"),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The campaign as it will run", body = Object),
        (status = 400, description = "Not UTF-8, or the id differs from the path's", body = ErrorBody),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 429, description = "Too many failed authentications from this address", body = ErrorBody),
        (status = 403, description = "The role may not", body = ErrorBody),
        (status = 422, description = "Not a valid campaign, or one a file defines", body = ErrorBody)
    ))]
async fn define_campaign(
    State(app): State<Arc<App>>,
    staff: Staff,
    P(id): P<String>,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    if staff.reader()? != "administrator" {
        return Err(ApiError::forbidden(
            "only the administrator role defines campaigns",
        ));
    }
    let text = String::from_utf8(body.to_vec())
        .map_err(|_| ApiError::bad_request("the campaign is not UTF-8 text"))?;
    let parsed = lectern::CampaignDef::parse(&text)
        .map_err(|e| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, format!("{e:#}")))?;
    if parsed.id != id {
        return Err(ApiError::bad_request(format!(
            "the campaign's id is `{}`, and the path says `{id}`: make them the same",
            parsed.id
        )));
    }
    let def = on_library(&app, move |l| l.define_campaign(&text)).await?;
    Ok(Json(serde_json::to_value(def).unwrap_or_default()))
}

/// Removes a campaign defined here (the `administrator` role); its
/// members' history stays for its outcome.
#[utoipa::path(delete, path = "/v1/campaigns/{id}",
    params(("id" = String, Path, description = "The campaign's id")),
    security(("bearer" = [])),
    responses(
        (status = 204, description = "Removed"),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 429, description = "Too many failed authentications from this address", body = ErrorBody),
        (status = 403, description = "The role may not", body = ErrorBody),
        (status = 404, description = "No campaign defined here by that id", body = ErrorBody)
    ))]
async fn remove_campaign(
    State(app): State<Arc<App>>,
    staff: Staff,
    P(id): P<String>,
) -> ApiResult<StatusCode> {
    if staff.reader()? != "administrator" {
        return Err(ApiError::forbidden(
            "only the administrator role removes campaigns",
        ));
    }
    let shown = id.clone();
    let removed = on_library(&app, move |l| l.remove_campaign(&id)).await?;
    if removed {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("no campaign `{shown}` was defined through the service"),
        ))
    }
}

/// `body` as a CSV download.
fn csv_response(body: String) -> Response {
    ([(header::CONTENT_TYPE, "text/csv; charset=utf-8")], body).into_response()
}
