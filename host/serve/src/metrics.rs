//! Prometheus metrics at `/metrics`: requests by route and status, their
//! latency, events accepted, failed authentications, and job runs. Labels
//! are routes and words, never a patron.

use std::sync::Mutex;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Request {
    route: String,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Route {
    route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Label {
    kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct JobLabel {
    job: String,
    state: String,
}

/// The service's metrics.
pub(crate) struct Metrics {
    registry: Mutex<Registry>,
    requests: Family<Request, Counter>,
    latency: Family<Route, Histogram>,
    events: Family<Label, Counter>,
    auth_failures: Family<Label, Counter>,
    jobs: Family<JobLabel, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("lectern");
        let requests = Family::<Request, Counter>::default();
        registry.register(
            "http_requests",
            "HTTP requests by route and status",
            requests.clone(),
        );
        let latency = Family::<Route, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.000_25, 2.0, 16))
        });
        registry.register(
            "http_request_seconds",
            "Time to answer a request, by route",
            latency.clone(),
        );
        let events = Family::<Label, Counter>::default();
        registry.register(
            "events",
            "Events from the ILS: accepted, duplicate or refused",
            events.clone(),
        );
        let auth_failures = Family::<Label, Counter>::default();
        registry.register(
            "auth_failures",
            "Failed authentications: missing, invalid or limited",
            auth_failures.clone(),
        );
        let jobs = Family::<JobLabel, Counter>::default();
        registry.register("job_runs", "Scheduled job runs by outcome", jobs.clone());
        Metrics {
            registry: Mutex::new(registry),
            requests,
            latency,
            events,
            auth_failures,
            jobs,
        }
    }
}

impl Metrics {
    pub(crate) fn request(&self, route: &str, status: u16, seconds: f64) {
        self.requests
            .get_or_create(&Request {
                route: route.to_string(),
                status,
            })
            .inc();
        self.latency
            .get_or_create(&Route {
                route: route.to_string(),
            })
            .observe(seconds);
    }

    pub(crate) fn event(&self, kind: &str) {
        self.events
            .get_or_create(&Label {
                kind: kind.to_string(),
            })
            .inc();
    }

    pub(crate) fn auth_failure(&self, kind: &str) {
        self.auth_failures
            .get_or_create(&Label {
                kind: kind.to_string(),
            })
            .inc();
    }

    pub(crate) fn job(&self, job: &str, ok: bool) {
        self.jobs
            .get_or_create(&JobLabel {
                job: job.to_string(),
                state: if ok { "ok" } else { "failed" }.to_string(),
            })
            .inc();
    }

    /// The text exposition format.
    pub(crate) fn render(&self) -> String {
        let mut out = String::new();
        let registry = self.registry.lock().unwrap_or_else(|e| e.into_inner());
        if prometheus_client::encoding::text::encode(&mut out, &registry).is_err() {
            out.clear();
        }
        out
    }
}
