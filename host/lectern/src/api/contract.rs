//! One released version of the `lectern:crm` contract: its generated
//! bindings for the three worlds, and the conversions between them and the
//! host's own records. Every version's module is this macro, given its WIT
//! folder and the patron fields it added, so the versions cannot drift
//! apart in how they convert.

/// Generates a version's bindings and conversions. `$v` is the version's
/// module under `api` (for the generated paths), `$wit` its WIT folder, and
/// `$added` the `patron-field` cases it has beyond 0.1.0, named as
/// [`crate::Field`] names them.
macro_rules! contract {
    ($v:ident, $wit:literal $(, $added:ident)* $(,)?) => {
        use chrono::{Datelike, NaiveDate};

        use crate::model;

        pub(crate) mod scorer {
            wasmtime::component::bindgen!({
                path: $wit,
                world: "scorer",
            });
        }

        pub(crate) mod messenger {
            wasmtime::component::bindgen!({
                path: $wit,
                world: "messenger",
                with: {
                    "lectern:crm/types": crate::api::$v::scorer::lectern::crm::types,
                    "lectern:crm/host": crate::api::$v::scorer::lectern::crm::host,
                },
            });
        }

        pub(crate) mod privacy_filter {
            wasmtime::component::bindgen!({
                path: $wit,
                world: "privacy-filter",
                with: {
                    "lectern:crm/types": crate::api::$v::scorer::lectern::crm::types,
                    "lectern:crm/host": crate::api::$v::scorer::lectern::crm::host,
                },
            });
        }

        pub(crate) use scorer::lectern::crm::host::LogLevel;
        pub(crate) use scorer::lectern::crm::types as wit;

        pub(crate) fn date(d: NaiveDate) -> wit::Date {
            wit::Date {
                year: d.year(),
                month: d.month() as u8,
                day: d.day() as u8,
            }
        }

        fn channel(c: model::Channel) -> wit::Channel {
            match c {
                model::Channel::Email => wit::Channel::Email,
                model::Channel::Sms => wit::Channel::Sms,
                model::Channel::Webhook => wit::Channel::Webhook,
                model::Channel::Print => wit::Channel::Print,
            }
        }

        pub(crate) fn channel_back(c: wit::Channel) -> model::Channel {
            match c {
                wit::Channel::Email => model::Channel::Email,
                wit::Channel::Sms => model::Channel::Sms,
                wit::Channel::Webhook => model::Channel::Webhook,
                wit::Channel::Print => model::Channel::Print,
            }
        }

        /// Moves an already projected patron into the contract's shape.
        pub(crate) fn patron(p: model::Patron) -> wit::Patron {
            wit::Patron {
                id: p.id,
                card_number: p.card_number,
                name: p.name,
                email: p.email,
                phone: p.phone,
                birth_date: p.birth_date.map(date),
                age_band: p.age_band,
                category: p.category,
                home_branch: p.home_branch,
                enrolled_on: p.enrolled_on.map(date),
                expires_on: p.expires_on.map(date),
                attributes: p.attributes.map(|a| {
                    a.into_iter()
                        .map(|(key, value)| wit::Attribute { key, value })
                        .collect()
                }),
                consents: p.consents.map(|c| wit::Consents {
                    reading_history: c.reading_history,
                    marketing: c.marketing,
                }),
                locale: p.locale,
                channels: p.channels.map(|c| c.into_iter().map(channel).collect()),
                activity: p.activity.map(|a| wit::Activity {
                    loans_30d: a.loans_30d,
                    loans_90d: a.loans_90d,
                    loans_365d: a.loans_365d,
                    renewals_365d: a.renewals_365d,
                    holds_365d: a.holds_365d,
                    overdue_now: a.overdue_now,
                    days_since_last_activity: a.days_since_last_activity,
                    visits_365d: a.visits_365d,
                    eresource_sessions_365d: a.eresource_sessions_365d,
                }),
                interests: p.interests.map(|i| {
                    i.into_iter()
                        .map(|(subject, loans)| wit::SubjectCount { subject, loans })
                        .collect()
                }),
                segments: p.segments.map(|s| {
                    s.into_iter()
                        .map(|(scorer, segment)| wit::SegmentMembership { scorer, segment })
                        .collect()
                }),
            }
        }

        fn loan(l: &model::Loan) -> wit::Loan {
            wit::Loan {
                title: l.title.clone(),
                barcode: l.barcode.clone(),
                due_on: date(l.due_on),
                renewals: l.renewals,
            }
        }

        /// The event as `messaging` takes it; `None` for a kind that goes
        /// through another interface (`title-wanted`, through `passing`).
        pub(crate) fn event(e: &model::Event) -> Option<wit::Event> {
            use model::EventKind as K;
            let kind = match &e.kind {
                K::Checkout { loan: l } => wit::EventKind::Checkout(loan(l)),
                K::DueSoon { loan: l } => wit::EventKind::DueSoon(loan(l)),
                K::Overdue {
                    loan: l,
                    days_overdue,
                } => wit::EventKind::Overdue(wit::Overdue {
                    loan: loan(l),
                    days_overdue: *days_overdue,
                }),
                K::HoldReady { hold } => wit::EventKind::HoldReady(wit::Hold {
                    title: hold.title.clone(),
                    pickup_branch: hold.pickup_branch.clone(),
                    expires_on: hold.expires_on.map(date),
                }),
                K::HoldExpiring { hold } => wit::EventKind::HoldExpiring(wit::Hold {
                    title: hold.title.clone(),
                    pickup_branch: hold.pickup_branch.clone(),
                    expires_on: hold.expires_on.map(date),
                }),
                K::WinBack => wit::EventKind::WinBack,
                K::CheckIn { loan: l } => wit::EventKind::CheckIn(loan(l)),
                K::MembershipExpiring { expires_on } => {
                    wit::EventKind::MembershipExpiring(date(*expires_on))
                }
                K::NewArrival { title, subject } => wit::EventKind::NewArrival(wit::Arrival {
                    title: title.clone(),
                    subject: subject.clone(),
                }),
                K::SurveyInvitation { title, url } => wit::EventKind::SurveyInvitation(wit::Survey {
                    title: title.clone(),
                    url: url.clone(),
                }),
                K::TitleWanted { .. } | K::CurrentAwareness { .. } => return None,
            };
            Some(wit::Event {
                id: e.id.clone(),
                at: e.at.timestamp(),
                kind,
            })
        }

        /// A loan as the contract carries it.
        #[allow(dead_code)]
        pub(crate) fn loan_of(l: &model::Loan) -> wit::Loan {
            loan(l)
        }

        /// A plugin's error, its text capped and its control characters escaped,
        /// since it reaches terminals and logs.
        pub(crate) fn guest_error(e: wit::PluginError) -> crate::GuestError {
            let clean = |m: String| crate::text::neutralise(&m, crate::text::MAX_ERROR_BYTES);
            match e {
                wit::PluginError::InvalidInput(m) => crate::GuestError::InvalidInput(clean(m)),
                wit::PluginError::BadConfig(m) => crate::GuestError::BadConfig(clean(m)),
                wit::PluginError::Other(m) => crate::GuestError::Other(clean(m)),
            }
        }

        pub(crate) fn purpose(p: crate::Purpose) -> wit::Purpose {
            use crate::Purpose as P;
            match p {
                P::Scoring => wit::Purpose::Scoring,
                P::MessagingTransactional => wit::Purpose::MessagingTransactional,
                P::MessagingMarketing => wit::Purpose::MessagingMarketing,
                P::StaffView => wit::Purpose::StaffView,
                P::Analytics => wit::Purpose::Analytics,
                P::PatronExport => wit::Purpose::PatronExport,
                // Never reached: the pipeline asks no policy about maintenance.
                P::Maintenance => wit::Purpose::StaffView,
                P::SelfService => wit::Purpose::PatronExport,
            }
        }

        pub(crate) fn access_context(c: &crate::AccessContext) -> wit::AccessContext {
            wit::AccessContext {
                purpose: purpose(c.purpose),
                actor: match &c.actor {
                    crate::Actor::Plugin(id) => wit::Actor::Plugin(id.clone()),
                    crate::Actor::Staff(role) => wit::Actor::Staff(role.clone()),
                    // The print channel's letter block: 0.1 has no channel actor.
                    crate::Actor::Channel(name) => wit::Actor::Staff(format!("channel:{name}")),
                    crate::Actor::Task(name) => wit::Actor::Staff(format!("task:{name}")),
                    crate::Actor::Reader(page) => wit::Actor::Staff(format!("reader:{page}")),
                },
            }
        }

        pub(crate) fn field_rule(r: &wit::FieldRule) -> (crate::Field, crate::Action) {
            use crate::{Action as A, Field as F};
            let field = match r.field {
                wit::PatronField::CardNumber => F::CardNumber,
                wit::PatronField::Name => F::Name,
                wit::PatronField::Email => F::Email,
                wit::PatronField::Phone => F::Phone,
                wit::PatronField::BirthDate => F::BirthDate,
                wit::PatronField::AgeBand => F::AgeBand,
                wit::PatronField::Category => F::Category,
                wit::PatronField::HomeBranch => F::HomeBranch,
                wit::PatronField::EnrolledOn => F::EnrolledOn,
                wit::PatronField::ExpiresOn => F::ExpiresOn,
                wit::PatronField::Attributes => F::Attributes,
                wit::PatronField::Consents => F::Consents,
                wit::PatronField::Locale => F::Locale,
                wit::PatronField::Channels => F::Channels,
                wit::PatronField::Activity => F::Activity,
                wit::PatronField::Interests => F::Interests,
                wit::PatronField::Segments => F::Segments,
                $(wit::PatronField::$added => F::$added,)*
            };
            let action = match r.action {
                wit::FieldAction::Keep => A::Keep,
                wit::FieldAction::Drop => A::Drop,
                wit::FieldAction::Mask => A::Mask,
                wit::FieldAction::Pseudonymise => A::Pseudonymise,
                wit::FieldAction::Generalise => A::Generalise,
            };
            (field, action)
        }

        /// A score as the host model holds it; `patron` is the token the plugin
        /// returned, which the pipeline checks.
        pub(crate) fn score(s: scorer::exports::lectern::crm::scoring::Score) -> model::Scored {
            model::Scored {
                patron: s.patron,
                value: s.value,
                segment: s.segment,
                reasons: s.reasons,
            }
        }

        /// One compose request: the event and its projected recipient.
        pub(crate) fn request(
            e: &model::Event,
            recipient: model::Patron,
        ) -> Option<messenger::exports::lectern::crm::messaging::Request> {
            Some(messenger::exports::lectern::crm::messaging::Request {
                event: event(e)?,
                recipient: patron(recipient),
            })
        }

        /// A patron as the contract carries them.
        #[allow(dead_code)]
        pub(crate) fn patron_of(p: model::Patron) -> wit::Patron {
            patron(p)
        }

        /// A message as the plugin wrote it, in the host model.
        pub(crate) fn draft(m: wit::Message) -> model::Draft {
            model::Draft {
                channel: channel_back(m.channel),
                locale: m.locale,
                subject: m.subject,
                body: m.body,
                dedupe_key: m.dedupe_key,
                send_after: m.send_after,
            }
        }
    };
}

pub(crate) use contract;
