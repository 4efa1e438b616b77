//! The ILS adapters: each takes events as its ILS sends them and commits
//! them to the inbox. Reading the ILS's shapes is the library's work
//! ([`lectern::koha_hook`] and the rest); here are the routes, the
//! authentication each ILS can do, and the answers each expects.

use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use chrono::Utc;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::App;
use crate::api::{Accepted, ApiError, P, Q, accept, header_text, parse_json};
use crate::auth::Staff;

type ApiResult<T> = Result<T, ApiError>;

pub(crate) fn routes() -> Router<Arc<App>> {
    Router::new()
        .route("/v1/ils/koha/events", post(koha))
        .route("/v1/ils/folio/pubsub", post(folio_envelope))
        .route("/v1/ils/folio/pubsub/{event_type}", post(folio_pubsub))
        .route("/v1/ils/folio/domain/loan", post(folio_loan_event))
        .route("/v1/ils/folio/domain/request", post(folio_request_event))
        .route("/v1/ils/alma/webhook", post(alma).get(alma_challenge))
        .route("/v1/ils/evergreen/events", post(evergreen))
}

/// Koha's `after_circ_action` and `after_hold_action` hooks, as the
/// Lectern Koha plugin forwards them.
#[utoipa::path(post, path = "/v1/ils/koha/events", request_body = crate::schemas::KohaHook,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Committed", body = Accepted),
        (status = 400, description = "Not JSON", body = crate::api::ErrorBody),
        (status = 401, description = "No valid token", body = crate::api::ErrorBody),
        (status = 429, description = "Too many failed authentications from this address", body = crate::api::ErrorBody),
        (status = 403, description = "Not the ils role", body = crate::api::ErrorBody),
        (status = 422, description = "Not a hook Lectern reads", body = crate::api::ErrorBody),
        (status = 503, description = "The store is unavailable; send it again", body = crate::api::ErrorBody)
    ))]
pub(crate) async fn koha(
    State(app): State<Arc<App>>,
    staff: Staff,
    body: Bytes,
) -> ApiResult<Json<Accepted>> {
    staff.ils()?;
    let value: Value = parse_json(&body)?;
    let event = lectern::koha_hook(
        &value,
        app.rules.koha_anonymous_patron.as_deref(),
        Utc::now(),
        app.clock,
    )?;
    accept(&app, event).await
}

/// What mod-pubsub posts to a subscriber's callback for `event_type`.
#[utoipa::path(post, path = "/v1/ils/folio/pubsub/{event_type}",
    request_body = crate::schemas::FolioPubsubPayload,
    params(("event_type" = crate::schemas::PubsubType, Path, description = "The event type this callback is subscribed to")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Committed", body = Accepted),
        (status = 401, description = "No valid token", body = crate::api::ErrorBody),
        (status = 429, description = "Too many failed authentications from this address", body = crate::api::ErrorBody),
        (status = 403, description = "Not the ils role", body = crate::api::ErrorBody),
        (status = 422, description = "Not an event Lectern reads", body = crate::api::ErrorBody),
        (status = 503, description = "The store is unavailable; send it again", body = crate::api::ErrorBody)
    ))]
pub(crate) async fn folio_pubsub(
    State(app): State<Arc<App>>,
    staff: Staff,
    P(event_type): P<String>,
    body: Bytes,
) -> ApiResult<Json<Accepted>> {
    staff.ils()?;
    let event = lectern::folio_pubsub(event_type.as_str(), &body, Utc::now(), app.clock)?;
    accept(&app, event).await
}

/// mod-pubsub's whole envelope, `{id, eventType, eventPayload,
/// eventMetadata}`, as a Kafka consumer or a relay forwards it; its
/// `eventPayload` is the payload above, as a JSON string.
#[utoipa::path(post, path = "/v1/ils/folio/pubsub", request_body = Object,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Committed", body = Accepted),
        (status = 400, description = "Not JSON", body = crate::api::ErrorBody),
        (status = 401, description = "No valid token", body = crate::api::ErrorBody),
        (status = 429, description = "Too many failed authentications from this address", body = crate::api::ErrorBody),
        (status = 403, description = "Not the ils role", body = crate::api::ErrorBody),
        (status = 422, description = "Not an event Lectern reads", body = crate::api::ErrorBody),
        (status = 503, description = "The store is unavailable; send it again", body = crate::api::ErrorBody)
    ))]
pub(crate) async fn folio_envelope(
    State(app): State<Arc<App>>,
    staff: Staff,
    body: Bytes,
) -> ApiResult<Json<Accepted>> {
    staff.ils()?;
    let value: Value = parse_json(&body)?;
    if value.get("eventPayload").is_none() {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "an envelope has `eventPayload`; post a bare payload to /v1/ils/folio/pubsub/{eventType}",
        ));
    }
    let event = lectern::folio_pubsub("", &body, Utc::now(), app.clock)?;
    accept(&app, event).await
}

async fn domain(app: Arc<App>, staff: Staff, record: &str, body: Bytes) -> ApiResult<Json<Value>> {
    staff.ils()?;
    let value: Value = parse_json(&body)?;
    match lectern::folio_domain(record, &value, app.clock)? {
        Some(event) => {
            let a = accept(&app, event).await?;
            Ok(Json(serde_json::to_value(&a.0).unwrap_or_default()))
        }
        None => Ok(Json(json!({ "duplicate": false, "kept": false }))),
    }
}

/// A loan's domain event from mod-circulation-storage, as a Kafka
/// consumer forwards it. A deletion keeps nothing.
#[utoipa::path(post, path = "/v1/ils/folio/domain/loan",
    request_body = crate::schemas::LoanDomainEvent,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Committed, or a deletion with nothing to keep", body = Object),
        (status = 400, description = "Not JSON", body = crate::api::ErrorBody),
        (status = 401, description = "No valid token", body = crate::api::ErrorBody),
        (status = 429, description = "Too many failed authentications from this address", body = crate::api::ErrorBody),
        (status = 403, description = "Not the ils role", body = crate::api::ErrorBody),
        (status = 422, description = "Not an event Lectern reads", body = crate::api::ErrorBody),
        (status = 503, description = "The store is unavailable; send it again", body = crate::api::ErrorBody)
    ))]
pub(crate) async fn folio_loan_event(
    State(app): State<Arc<App>>,
    staff: Staff,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    domain(app, staff, "loan", body).await
}

/// A request's domain event from mod-circulation-storage.
#[utoipa::path(post, path = "/v1/ils/folio/domain/request",
    request_body = crate::schemas::RequestDomainEvent,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Committed, or a deletion with nothing to keep", body = Object),
        (status = 400, description = "Not JSON", body = crate::api::ErrorBody),
        (status = 401, description = "No valid token", body = crate::api::ErrorBody),
        (status = 429, description = "Too many failed authentications from this address", body = crate::api::ErrorBody),
        (status = 403, description = "Not the ils role", body = crate::api::ErrorBody),
        (status = 422, description = "Not an event Lectern reads", body = crate::api::ErrorBody),
        (status = 503, description = "The store is unavailable; send it again", body = crate::api::ErrorBody)
    ))]
pub(crate) async fn folio_request_event(
    State(app): State<Arc<App>>,
    staff: Staff,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    domain(app, staff, "request", body).await
}

/// What Evergreen's CallHTTP reactor posts, rendered from the templates in
/// `connectors/evergreen/`. An older libwww-perl sends it as
/// form-urlencoded whatever the template says, so the content type is not
/// checked: the body is read as JSON.
#[utoipa::path(post, path = "/v1/ils/evergreen/events", request_body = crate::schemas::EvergreenEvent,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Committed", body = Accepted),
        (status = 400, description = "Not JSON", body = crate::api::ErrorBody),
        (status = 401, description = "No valid token", body = crate::api::ErrorBody),
        (status = 429, description = "Too many failed authentications from this address", body = crate::api::ErrorBody),
        (status = 403, description = "Not the ils role", body = crate::api::ErrorBody),
        (status = 422, description = "Not an event Lectern reads", body = crate::api::ErrorBody),
        (status = 503, description = "The store is unavailable", body = crate::api::ErrorBody)
    ))]
pub(crate) async fn evergreen(
    State(app): State<Arc<App>>,
    staff: Staff,
    body: Bytes,
) -> ApiResult<Json<Accepted>> {
    staff.ils()?;
    let value: Value = parse_json(&body)?;
    let event = lectern::evergreen(&value, Utc::now(), app.clock)?;
    accept(&app, event).await
}

#[derive(Deserialize)]
pub(crate) struct Challenge {
    challenge: String,
}

/// Alma's check when a webhook integration profile is saved: the
/// challenge, echoed.
#[utoipa::path(get, path = "/v1/ils/alma/webhook",
    params(("challenge" = String, Query, description = "Alma's challenge")),
    responses(
        (status = 200, description = "The challenge, echoed", body = Object),
        (status = 400, description = "No challenge", body = crate::api::ErrorBody)
    ))]
pub(crate) async fn alma_challenge(Q(c): Q<Challenge>) -> Json<Value> {
    Json(json!({ "challenge": c.challenge }))
}

/// An Alma webhook, signed in `X-Exl-Signature` with the integration
/// profile's secret. Alma retries on 5xx, so 5xx means only that the store
/// could not take it now.
#[utoipa::path(post, path = "/v1/ils/alma/webhook", request_body = Object,
    params(("X-Exl-Signature" = String, Header, description = "Base64 HMAC-SHA256 of the body")),
    responses(
        (status = 200, description = "Committed, or an event Lectern does not keep", body = Object),
        (status = 400, description = "Not JSON", body = crate::api::ErrorBody),
        (status = 401, description = "No valid signature", body = crate::api::ErrorBody),
        (status = 422, description = "Not an event Lectern reads", body = crate::api::ErrorBody),
        (status = 503, description = "The store is unavailable; send it again", body = crate::api::ErrorBody)
    ))]
pub(crate) async fn alma(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    let Some(secret) = &app.alma_secret else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "Alma is not connected: set `serve.alma-secret-env` in lectern.toml",
        ));
    };
    let signed = header_text(&headers, "x-exl-signature")
        .is_some_and(|s| lectern::alma_signature_ok(secret, &body, s));
    if !signed {
        app.metrics.auth_failure("alma-signature");
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "the X-Exl-Signature header is missing or does not match the body",
        ));
    }
    let value: Value = parse_json(&body)?;
    match lectern::alma_webhook(&value, Utc::now(), app.clock)? {
        Some(event) => {
            let a = accept(&app, event).await?;
            Ok(Json(serde_json::to_value(&a.0).unwrap_or_default()))
        }
        None => Ok(Json(json!({ "duplicate": false, "kept": false }))),
    }
}
