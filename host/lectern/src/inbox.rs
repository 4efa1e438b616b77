//! The inbox: events the ILS pushes are committed before the sender hears
//! they were accepted, then processed in order, each once: its change to
//! the records in one transaction with the mark that it was processed, and
//! its notices queued under dedupe keys, so that a process killed at any
//! point neither loses an accepted event nor acts on one twice.

use chrono::{DateTime, NaiveTime, TimeZone as _, Utc};
use serde::Serialize;

use crate::error::{Error, Result};
use crate::facade::Lectern;
use crate::model::{Event, EventKind, Loan};
use crate::plugin::Messenger;
use crate::store::{Circulation, InboxEvent, InboxRow, LoanRecord, Outcome};

/// The longest id, source or kind an event may carry.
const MAX_ID: usize = 200;

/// What one pass over the inbox did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct InboxReport {
    /// Events whose change was written.
    pub applied: usize,
    /// Events that named a patron or record the store does not hold, or
    /// changed nothing.
    pub skipped: usize,
    /// Notices queued because of them.
    pub queued: usize,
}

fn check_text(what: &str, value: &str) -> Result<()> {
    if value.is_empty() || value.chars().count() > MAX_ID || value.chars().any(char::is_control) {
        return Err(Error::Invalid {
            where_: "the event".into(),
            message: format!(
                "the event's {what} {:?} is not usable: give 1 to {MAX_ID} characters, no control \
             characters",
                value
                    .chars()
                    .take(40)
                    .collect::<String>()
                    .escape_default()
                    .to_string()
            ),
        });
    }
    Ok(())
}

impl Lectern {
    /// Commits `event` to the inbox; false if it was accepted before (the
    /// same source and id), in which case nothing changes. Once this
    /// returns, the event survives any crash.
    pub fn accept_event(&mut self, event: &InboxEvent, now: DateTime<Utc>) -> Result<bool> {
        check_text("source", &event.source)?;
        check_text("id", &event.id)?;
        check_text("kind", &event.kind)?;
        if let Some(p) = &event.patron {
            check_text("patron id", p)?;
        }
        self.store_mut()
            .accept_event(event, now)
            .map_err(|e| Error::store(e.context("the event was not accepted")))
    }

    /// Processes up to `limit` waiting events in order, then queues the
    /// notices of every processed event that has none queued yet, composed
    /// by `messengers`.
    pub fn process_inbox(
        &mut self,
        messengers: &[Messenger],
        now: DateTime<Utc>,
        limit: usize,
    ) -> Result<InboxReport> {
        let mut report = InboxReport::default();
        let pending = self.store().pending_events(limit).map_err(Error::store)?;
        for row in pending {
            match self
                .store_mut()
                .apply_event(row.seq, now)
                .map_err(Error::store)?
            {
                Some(Outcome::Applied) => report.applied += 1,
                Some(Outcome::Skipped) => report.skipped += 1,
                None => {}
            }
        }
        let done = self
            .store()
            .unnotified_events(limit)
            .map_err(Error::store)?;
        if done.is_empty() {
            return Ok(report);
        }
        let mut events = Vec::new();
        for row in &done {
            events.extend(self.notice_for(row)?);
        }
        if !events.is_empty() && !messengers.is_empty() {
            report.queued = self.compose_and_queue(messengers, &events, now)?.queued;
        }
        for row in &done {
            self.store_mut()
                .mark_notified(row.seq)
                .map_err(Error::store)?;
        }
        Ok(report)
    }

    /// The notice a processed event calls for: a checkout receipt, a
    /// check-in receipt, or a hold ready for pickup. An anonymised event
    /// (no patron) calls for none.
    fn notice_for(&self, row: &InboxRow) -> Result<Option<Event>> {
        let Some(patron) = &row.event.patron else {
            return Ok(None);
        };
        let store = self.store();
        Ok(match &row.event.change {
            // A receipt for a checkout itself, not for every update of an
            // open loan (a renewal, a due-date reminder from the ILS), and
            // dated by the loan, so that the same checkout sent again is
            // the same notice.
            Some(Circulation::Loan(l))
                if l.returned_on.is_none() && is_checkout(&row.event.kind) =>
            {
                l.due_on.map(|due_on| Event {
                    id: format!("checkout/{}", l.id),
                    patron: patron.clone(),
                    at: Utc.from_utc_datetime(&l.loaned_on.and_time(NaiveTime::MIN)),
                    kind: EventKind::Checkout {
                        loan: loan_of(&l.record(patron), due_on),
                    },
                })
            }
            Some(Circulation::Returned { loan, on }) => store
                .loan(loan)
                .map_err(Error::store)?
                .filter(|l| &l.patron == patron)
                .map(|l| Event {
                    id: format!("checkin/{}", l.id),
                    patron: patron.clone(),
                    at: Utc.from_utc_datetime(&on.and_time(NaiveTime::MIN)),
                    kind: EventKind::CheckIn {
                        loan: loan_of(&l, l.due_on.unwrap_or(*on)),
                    },
                }),
            Some(Circulation::Hold(h)) if is_waiting(h.status.as_deref()) => store
                .hold(&h.id)
                .map_err(Error::store)?
                .map(|h| crate::notify::hold_ready(&h)),
            Some(Circulation::HoldState { hold, status, .. }) if is_waiting(Some(status)) => store
                .hold(hold)
                .map_err(Error::store)?
                .map(|h| crate::notify::hold_ready(&h)),
            _ => None,
        })
    }
}

fn loan_of(l: &LoanRecord, due_on: chrono::NaiveDate) -> Loan {
    Loan {
        title: l.title.clone().unwrap_or_else(|| "(untitled)".into()),
        barcode: l.item.clone(),
        due_on,
        renewals: l.renewals,
    }
}

/// Whether an event's kind, in its ILS's words, is a checkout.
fn is_checkout(kind: &str) -> bool {
    matches!(
        kind,
        "checkout" | "ITEM_CHECKED_OUT" | "loan.CREATED" | "LOAN_CREATED"
    )
}

/// Whether a hold's status says it waits for pickup, in the words the
/// store's detection uses.
fn is_waiting(status: Option<&str>) -> bool {
    status.is_some_and(|s| {
        let s = s.to_ascii_lowercase();
        s.contains("awaiting pickup") || matches!(s.as_str(), "w" | "waiting" | "ready")
    })
}

impl Lectern {
    /// Runs `work` as a run of `job`, recorded in the job history with
    /// what it says it did, or with why it failed.
    pub fn run_job(
        &mut self,
        job: &str,
        work: impl FnOnce(&mut Lectern) -> Result<String>,
    ) -> Result<String> {
        let id = self
            .store_mut()
            .start_job(job, Utc::now())
            .map_err(Error::store)?;
        let outcome = work(self);
        let (ok, summary) = match &outcome {
            Ok(s) => (true, s.clone()),
            Err(e) => (false, e.to_string()),
        };
        self.store_mut()
            .end_job(id, Utc::now(), ok, &summary)
            .map_err(Error::store)?;
        outcome
    }

    /// Records a run of `job` that started at `started_at` and ended now,
    /// for work done outside [`Lectern::run_job`]: the service's frequent
    /// jobs, recorded only when they did something.
    pub fn record_job(
        &mut self,
        job: &str,
        started_at: DateTime<Utc>,
        ok: bool,
        summary: &str,
    ) -> Result<()> {
        let id = self
            .store_mut()
            .start_job(job, started_at)
            .map_err(Error::store)?;
        self.store_mut()
            .end_job(id, Utc::now(), ok, summary)
            .map_err(Error::store)
    }

    /// The newest `n` job runs, of `job` if given, newest first.
    pub fn job_runs(&self, job: Option<&str>, n: usize) -> Result<Vec<crate::store::JobRun>> {
        self.store().job_runs(job, n).map_err(Error::store)
    }

    /// How many events the inbox holds, by state.
    pub fn inbox_stats(&self) -> Result<crate::store::InboxStats> {
        self.store().inbox_stats().map_err(Error::store)
    }
}
