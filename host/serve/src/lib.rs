//! `lectern serve`: the HTTP service an ILS connects to. It is a thin
//! front end over [`lectern::Lectern`], as the `lectern` command is: every
//! rule (roles, k, audit, consent) is the library's, and this crate only
//! maps requests to use cases and errors to statuses.
//!
//! The service holds two libraries over the same store: one that only
//! authenticates and accepts events, so that intake answers at once even
//! while a scoring run holds the other, and one for everything else. Both
//! append to the same audit chain, serialised by the store.

mod api;
mod auth;
mod ils;
mod metrics;
mod pages;
mod scheduler;
mod schemas;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use anyhow::{Context as _, Result};
use lectern::{Lectern, Messenger, ServeRules};

pub use api::ApiDoc;

/// What the handlers share.
pub struct App {
    /// Authenticates and accepts events; nothing slow runs on it.
    pub(crate) intake: Mutex<Lectern>,
    /// Everything else: reports, exports, the scheduler's jobs.
    pub(crate) library: Mutex<Lectern>,
    /// Composes the notices events cause.
    pub(crate) messengers: Vec<Messenger>,
    pub(crate) rules: ServeRules,
    /// The library's clock, which ILS dates count on.
    pub(crate) clock: lectern::Clock,
    pub(crate) metrics: metrics::Metrics,
    pub(crate) limiter: auth::Limiter,
    /// The smallest k the library's configuration lets a report use.
    pub(crate) k_floor: usize,
    /// The consortium the library belongs to, opened at its first request.
    pub(crate) consortium: Mutex<Option<lectern::Consortium>>,
    /// The reader pages' rules (`[readers]`).
    pub(crate) readers: lectern::ReaderRules,
    /// Registrations per client address per hour.
    pub(crate) registrations: auth::Limiter,
    /// Alma's webhook secret, if Alma is connected.
    pub(crate) alma_secret: Option<String>,
    /// Set when the service is told to stop: the scheduler starts nothing
    /// new.
    pub(crate) stopping: tokio::sync::watch::Sender<bool>,
    /// The last failure of each frequent job, so that one failing the same
    /// way every few seconds is recorded once.
    pub(crate) failures: Mutex<std::collections::HashMap<String, String>>,
}

impl App {
    /// Runs `f` on the consortium of the library's store, opening it the
    /// first time: a SQLite store has none, which `f` never sees.
    pub(crate) fn on_consortium<T>(
        &self,
        f: impl FnOnce(&lectern::Consortium) -> lectern::Result<T>,
    ) -> lectern::Result<T> {
        let mut slot = self.consortium.lock().unwrap_or_else(|e| e.into_inner());
        let consortium = match slot.take() {
            Some(c) => c,
            None => {
                let library = self.intake.lock().unwrap_or_else(|e| e.into_inner());
                library.consortium()?
            }
        };
        let out = f(&consortium);
        *slot = Some(consortium);
        out
    }

    /// Notes how `job` last ended (`None`: it did not fail); whether this
    /// failure is new and should be recorded.
    pub(crate) fn last_failure(&self, job: &str, failure: Option<String>) -> bool {
        let mut last = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        match failure {
            None => {
                last.remove(job);
                false
            }
            Some(f) => last.insert(job.to_string(), f.clone()).as_deref() != Some(f.as_str()),
        }
    }
}

/// Runs the service until SIGTERM or SIGINT, then stops accepting
/// connections, lets in-flight requests and the running job finish, and
/// returns. `open` opens the library: the front end knows where the store
/// and keys are, and the service opens two over them.
pub fn serve(
    open: impl Fn() -> lectern::Result<Lectern>,
    ready: impl FnOnce(SocketAddr),
) -> Result<()> {
    let intake = open()?;
    let library = open()?;
    let rules = library.config().serve.clone();
    let readers = library.config().readers.clone();
    // The surveys are read now, so that a broken survey file stops the
    // service from starting rather than a reader's page.
    library.surveys()?;
    let clock = library.config().notify.clock;
    let messengers = rules
        .messengers
        .iter()
        .map(|m| {
            library
                .plugin_at(m)
                .and_then(|p| p.into_messenger())
                .with_context(|| format!("`serve.messengers`: cannot load {m}"))
        })
        .collect::<Result<Vec<_>>>()?;
    let alma_secret = match &rules.alma_secret_env {
        Some(var) => Some(std::env::var(var).with_context(|| {
            format!("`serve.alma-secret-env` names {var}, which is not set; set it to the secret of Alma's webhook integration profile")
        })?),
        None => None,
    };
    let k_floor = library.config().k_floor;
    let (stopping, _) = tokio::sync::watch::channel(false);
    let app = Arc::new(App {
        intake: Mutex::new(intake),
        library: Mutex::new(library),
        messengers,
        limiter: auth::Limiter::new(rules.auth_failures_per_minute),
        registrations: auth::Limiter::per(
            readers.registrations_per_hour,
            std::time::Duration::from_secs(3600),
        ),
        readers,
        rules,
        clock,
        consortium: Mutex::default(),
        k_floor,
        metrics: metrics::Metrics::default(),
        alma_secret,
        stopping,
        failures: Mutex::default(),
    });
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(run(app, ready))
}

async fn run(app: Arc<App>, ready: impl FnOnce(SocketAddr)) -> Result<()> {
    let listener = tokio::net::TcpListener::bind(&app.rules.listen)
        .await
        .with_context(|| {
            format!(
                "cannot listen on {} (`serve.listen` in lectern.toml)",
                app.rules.listen
            )
        })?;
    let addr = listener.local_addr()?;
    let router = api::router(app.clone());
    let scheduler = tokio::spawn(scheduler::run_loop(app.clone()));
    ready(addr);
    tracing::info!("listening on {addr}");
    let stop = app.clone();
    axum::serve(
        listener,
        router.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(async move {
        shutdown_signal().await;
        tracing::info!("stopping: finishing the requests and the job in flight");
        let _ = stop.stopping.send(true);
    })
    .await
    .context("the server failed")?;
    // The scheduler sees `stopping` and ends after its current job.
    scheduler.await.context("the scheduler failed")?;
    Ok(())
}

async fn shutdown_signal() {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate => {}
    }
}
