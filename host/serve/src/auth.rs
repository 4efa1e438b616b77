//! Who is asking: a bearer token, checked by the library, with failed
//! attempts limited per client address.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use lectern::{ILS_ROLE, StaffAccount};

use crate::App;
use crate::api::ApiError;

/// Attempts per client address in a window: failed authentications in a
/// minute, registrations in an hour.
pub(crate) struct Limiter {
    per_minute: u32,
    window: Duration,
    failures: Mutex<HashMap<IpAddr, (Instant, u32)>>,
}

impl Limiter {
    pub(crate) fn new(per_minute: u32) -> Limiter {
        Limiter::per(per_minute, Duration::from_secs(60))
    }

    /// `count` attempts per `window`.
    pub(crate) fn per(count: u32, window: Duration) -> Limiter {
        Limiter {
            per_minute: count,
            window,
            failures: Mutex::default(),
        }
    }

    fn window(&self, ip: IpAddr, now: Instant) -> u32 {
        let mut map = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        // Forget windows that ended, so the map does not grow without end.
        if map.len() > 10_000 {
            map.retain(|_, (start, _)| now.duration_since(*start) < self.window);
        }
        match map.get(&ip) {
            Some((start, n)) if now.duration_since(*start) < self.window => *n,
            _ => 0,
        }
    }

    /// Whether `ip` may try again.
    pub(crate) fn allows(&self, ip: IpAddr) -> bool {
        self.window(ip, Instant::now()) < self.per_minute
    }

    /// Counts one attempt by `ip`.
    pub(crate) fn failed(&self, ip: IpAddr) {
        let now = Instant::now();
        let mut map = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        let entry = map.entry(ip).or_insert((now, 0));
        if now.duration_since(entry.0) >= self.window {
            *entry = (now, 0);
        }
        entry.1 += 1;
    }
}

/// The staff account a request acts as: its role is the request's actor,
/// never a parameter.
pub(crate) struct Staff(pub(crate) StaffAccount);

impl Staff {
    /// Refuses the `ils` role, which reads nothing.
    pub(crate) fn reader(&self) -> Result<&str, ApiError> {
        if self.0.role == ILS_ROLE {
            return Err(ApiError::forbidden(
                "the `ils` role pushes patrons and events and reads nothing; use a staff token",
            ));
        }
        Ok(&self.0.role)
    }

    /// Refuses every role but `ils`: only a connected ILS pushes records.
    pub(crate) fn ils(&self) -> Result<(), ApiError> {
        if self.0.role != ILS_ROLE {
            return Err(ApiError::forbidden(
                "only a token of the `ils` role pushes patrons and events; make one with \
                 `lectern staff add NAME --role ils`",
            ));
        }
        Ok(())
    }
}

/// The bearer token of a request, if it has one.
pub(crate) fn bearer(parts: &Parts) -> Option<&str> {
    parts
        .headers
        .get(axum::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
        .map(str::trim)
}

/// An account of the consortium the library belongs to: it reads the
/// consortium's aggregates and nothing of any one library.
pub(crate) struct ConsortiumStaff(#[allow(dead_code)] pub(crate) StaffAccount);

impl FromRequestParts<Arc<App>> for Staff {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, app: &Arc<App>) -> Result<Staff, ApiError> {
        authenticated(parts, app, |app, token| {
            let library = app.intake.lock().unwrap_or_else(|e| e.into_inner());
            library.authenticate(token, chrono::Utc::now())
        })
        .await
        .map(Staff)
    }
}

impl FromRequestParts<Arc<App>> for ConsortiumStaff {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        app: &Arc<App>,
    ) -> Result<ConsortiumStaff, ApiError> {
        authenticated(parts, app, |app, token| {
            app.on_consortium(|c| c.authenticate(token, chrono::Utc::now()))
        })
        .await
        .map(ConsortiumStaff)
    }
}

/// The account the request's bearer token belongs to, as `check` finds
/// it; failures are counted per client address and limited.
async fn authenticated(
    parts: &Parts,
    app: &Arc<App>,
    check: impl FnOnce(&App, &str) -> lectern::Result<StaffAccount> + Send + 'static,
) -> Result<StaffAccount, ApiError> {
    let ip = parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip())
        .unwrap_or(IpAddr::from([0, 0, 0, 0]));
    if !app.limiter.allows(ip) {
        app.metrics.auth_failure("limited");
        return Err(ApiError::too_many());
    }
    let Some(token) = bearer(parts).map(str::to_string) else {
        app.limiter.failed(ip);
        app.metrics.auth_failure("missing");
        return Err(ApiError::unauthorized());
    };
    let app2 = app.clone();
    let checked = tokio::task::spawn_blocking(move || check(&app2, &token))
        .await
        .map_err(|_| ApiError::internal("the authentication task failed"))?;
    match checked {
        Ok(account) => Ok(account),
        Err(e) if e.kind() == lectern::ErrorKind::Denied => {
            app.limiter.failed(ip);
            app.metrics.auth_failure("invalid");
            Err(ApiError::unauthorized())
        }
        Err(e) => Err(ApiError::from(e)),
    }
}
