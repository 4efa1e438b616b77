//! The SDK for writing Lectern plugins in Rust.
//!
//! A plugin implements one trait, [`Scorer`], [`Messenger`],
//! [`PrivacyFilter`] or [`Forecaster`], and registers it with the matching
//! macro. It never touches `wit-bindgen` itself:
//!
//! ```ignore
//! use lectern_plugin::{Patron, PluginError, Score, Scorer};
//!
//! struct Busy;
//!
//! impl Scorer for Busy {
//!     fn score(patron: &Patron) -> Result<Score, PluginError> {
//!         let loans = patron.activity.as_ref().map_or(0, |a| a.loans_365d);
//!         Ok(Score::new(patron, loans.min(100) as f32, "busy")
//!             .reason(format!("{loans} loans in the last year")))
//!     }
//! }
//!
//! lectern_plugin::export_scorer!(Busy);
//! ```
//!
//! A [`Messenger`] is built as world `awareness-messenger`: `messaging`,
//! plus `passing` and `awareness` (both since 0.2.0). Besides
//! [`Messenger::compose`] for circulation and CRM events, it may override
//! [`Messenger::compose_title_wanted`], the courteous notice that other
//! readers wait for a title the patron has (`title-wanted`), and
//! [`Messenger::compose_digest`], a reader's current-awareness [`Digest`]
//! of new and in-demand titles (`current-awareness`, marketing). Both
//! default to composing nothing, so a messenger that overrides neither
//! works as before.
//!
//! A [`Forecaster`] (world `forecaster`, since 0.2.0) never sees a patron:
//! it gets monthly [`Series`] of demand that the host has already
//! aggregated and k-suppressed, and answers with a [`Forecast`] per series:
//!
//! ```ignore
//! use lectern_plugin::{Forecast, Forecaster, PluginError, Series};
//!
//! struct SameAsLastMonth;
//!
//! impl Forecaster for SameAsLastMonth {
//!     fn forecast(series: &Series, horizon: u32) -> Result<Forecast, PluginError> {
//!         let last = series.values.iter().rev().find_map(|v| *v).unwrap_or(0.0);
//!         let ahead = vec![last; horizon as usize];
//!         Ok(Forecast {
//!             values: ahead.clone(),
//!             low: ahead.clone(),
//!             high: ahead,
//!             level: 0.0,
//!             reasons: vec!["same as the last month shown".to_string()],
//!         })
//!     }
//! }
//!
//! lectern_plugin::export_forecaster!(SameAsLastMonth);
//! ```
//!
//! Build with `cargo build --release --target wasm32-wasip2`; the result is a
//! component the host loads beside its `plugin.toml`.

#[doc(hidden)]
pub mod __private {
    //! Generated bindings, one module per world. They share the `types` and
    //! `host` interfaces, which the scorer module generates.

    /// The `columnar-scorer` world: a scorer exports both forms, and the
    /// host picks the faster one it can use.
    pub mod scorer {
        wit_bindgen::generate!({
            path: "wit/v0.2.0",
            world: "columnar-scorer",
            additional_derives: [PartialEq],
            pub_export_macro: true,
            export_macro_name: "export_columnar_scorer_world",
            default_bindings_module: "lectern_plugin::__private::scorer",
        });
    }

    /// The `awareness-messenger` world: a messenger exports `messaging`,
    /// `passing` and `awareness`, and the host calls `passing` for
    /// title-wanted notices and `awareness` for current-awareness digests.
    pub mod messenger {
        wit_bindgen::generate!({
            path: "wit/v0.2.0",
            world: "awareness-messenger",
            pub_export_macro: true,
            export_macro_name: "export_messenger_world",
            default_bindings_module: "lectern_plugin::__private::messenger",
            with: {
                "lectern:crm/types@0.2.0": crate::__private::scorer::lectern::crm::types,
                "lectern:crm/host@0.2.0": crate::__private::scorer::lectern::crm::host,
            },
        });
    }

    /// The `forecaster` world, since 0.2.0: a forecaster exports
    /// `forecasting`, and sees monthly aggregates, never a patron.
    pub mod forecaster {
        wit_bindgen::generate!({
            path: "wit/v0.2.0",
            world: "forecaster",
            pub_export_macro: true,
            export_macro_name: "export_forecaster_world",
            default_bindings_module: "lectern_plugin::__private::forecaster",
            with: {
                "lectern:crm/types@0.2.0": crate::__private::scorer::lectern::crm::types,
                "lectern:crm/host@0.2.0": crate::__private::scorer::lectern::crm::host,
            },
        });
    }

    /// The `privacy-filter` world.
    pub mod privacy_filter {
        wit_bindgen::generate!({
            path: "wit/v0.2.0",
            world: "privacy-filter",
            pub_export_macro: true,
            export_macro_name: "export_privacy_filter_world",
            default_bindings_module: "lectern_plugin::__private::privacy_filter",
            with: {
                "lectern:crm/types@0.2.0": crate::__private::scorer::lectern::crm::types,
                "lectern:crm/host@0.2.0": crate::__private::scorer::lectern::crm::host,
            },
        });
    }
}

#[doc(hidden)]
pub mod columns;
mod date;
pub mod host;

pub use __private::forecaster::exports::lectern::crm::forecasting::{Forecast, Month, Series};
pub use __private::messenger::exports::lectern::crm::awareness::{
    Digest, DigestRequest, DigestTitle, Pick,
};
use __private::messenger::exports::lectern::crm::messaging;
pub use __private::messenger::exports::lectern::crm::passing::{TitleWanted, WantedRequest};
use __private::scorer::exports::lectern::crm::scoring;

pub use __private::scorer::lectern::crm::types::{
    AccessContext, Activity, Actor, Arrival, Attribute, Channel, Consents, Date, Event, EventKind,
    FieldAction, FieldRule, Hold, Loan, Message, Overdue, PatronField, PluginError, Policy,
    Purpose, SegmentMembership, SubjectCount, Survey, Timestamp,
};
pub use messaging::Request;
pub use scoring::Score;

/// A patron as the host lets this plugin see them. Fields the plugin did not
/// declare, or the privacy policy withholds, are `None`.
pub use __private::scorer::lectern::crm::types::Patron;

/// Scores patrons: engagement, key readers, churn risk, or the library's own.
///
/// Implement [`Scorer::score`]; override [`Scorer::score_batch`] only to share
/// work across a batch.
pub trait Scorer {
    /// The segments this scorer puts patrons in, named once so that a batch's
    /// results can give them by number. Only an optimisation: a segment not
    /// listed still goes back, as text.
    const SEGMENTS: &'static [&'static str] = &[];

    /// Reasons that never vary (`"no recorded activity"`), named once like
    /// [`Scorer::SEGMENTS`]. Reasons with numbers in them go as text, once
    /// per batch.
    const REASONS: &'static [&'static str] = &[];

    /// Scores one patron.
    fn score(patron: &Patron) -> Result<Score, PluginError>;

    /// Scores a batch. The result has one score per patron, in order.
    fn score_batch(patrons: Vec<Patron>) -> Result<Vec<Score>, PluginError> {
        patrons.iter().map(Self::score).collect()
    }
}

/// Composes notices from circulation and CRM events.
pub trait Messenger {
    /// Composes the messages for one event: none, one, or several.
    fn compose(event: &Event, recipient: &Patron) -> Result<Vec<Message>, PluginError>;

    /// Composes many; one failure does not fail the others.
    fn compose_batch(requests: Vec<Request>) -> Vec<Result<Vec<Message>, PluginError>> {
        requests
            .iter()
            .map(|r| Self::compose(&r.event, &r.recipient))
            .collect()
    }

    /// Composes the courteous notice that other readers wait for a title
    /// the patron has on loan (`title-wanted`, since 0.2.0). The host asks
    /// only a messenger whose manifest lists `title-wanted` among its
    /// events, or lists none. The default composes nothing.
    fn compose_title_wanted(
        event: &TitleWanted,
        recipient: &Patron,
    ) -> Result<Vec<Message>, PluginError> {
        let _ = (event, recipient);
        Ok(Vec::new())
    }

    /// Composes a reader's current-awareness digest (`current-awareness`,
    /// since 0.2.0) for one period: titles new in their subjects and titles
    /// many readers wait for. It is marketing: the host asks only for
    /// readers who consented to marketing and to the use of their reading
    /// history, and sends what comes back under the library's daily limits,
    /// quiet hours and the reader's preferences. It asks only a messenger
    /// whose manifest lists `current-awareness` among its events, or lists
    /// none. The default composes nothing.
    fn compose_digest(digest: &Digest, recipient: &Patron) -> Result<Vec<Message>, PluginError> {
        let _ = (digest, recipient);
        Ok(Vec::new())
    }
}

/// Decides what each purpose and role may see of a patron.
pub trait PrivacyFilter {
    /// The policy for an access context.
    fn policy(context: &AccessContext) -> Result<Policy, PluginError>;

    /// Tightens the policy for one record. Called only when the policy set
    /// `refine_per_record`; the default tightens nothing.
    fn refine(context: &AccessContext, record: &Patron) -> Result<Vec<FieldRule>, PluginError> {
        let _ = (context, record);
        Ok(Vec::new())
    }
}

/// Forecasts demand per month from series that name no patron: the host
/// aggregates loans per subject and group of readers, hides the months with
/// too few readers (`None` in [`Series::values`]), and asks for `horizon`
/// months after each series' last.
///
/// Implement [`Forecaster::forecast`]; override
/// [`Forecaster::forecast_batch`] only to share work across a batch, such
/// as reading the configuration once.
pub trait Forecaster {
    /// Forecasts `horizon` months after `series`.
    fn forecast(series: &Series, horizon: u32) -> Result<Forecast, PluginError>;

    /// Forecasts many. The result has one entry per series, in order; one
    /// failure does not fail the others.
    fn forecast_batch(series: Vec<Series>, horizon: u32) -> Vec<Result<Forecast, PluginError>> {
        series.iter().map(|s| Self::forecast(s, horizon)).collect()
    }
}

impl Score {
    /// A score for `patron`, clamped to 0..=100, with no reasons yet.
    pub fn new(patron: &Patron, value: f32, segment: impl Into<String>) -> Self {
        Score {
            patron: patron.id.clone(),
            value: value.clamp(0.0, 100.0),
            segment: segment.into(),
            reasons: Vec::new(),
        }
    }

    /// Adds a reason in plain words.
    pub fn reason(mut self, reason: impl Into<String>) -> Self {
        self.reasons.push(reason.into());
        self
    }
}

/// Every patron field, in the contract's order.
pub const ALL_FIELDS: [PatronField; 18] = [
    PatronField::CardNumber,
    PatronField::Name,
    PatronField::Email,
    PatronField::Phone,
    PatronField::BirthDate,
    PatronField::AgeBand,
    PatronField::Category,
    PatronField::HomeBranch,
    PatronField::EnrolledOn,
    PatronField::ExpiresOn,
    PatronField::Attributes,
    PatronField::Consents,
    PatronField::Locale,
    PatronField::Channels,
    PatronField::Activity,
    PatronField::Interests,
    PatronField::Segments,
    PatronField::Address,
];

impl Policy {
    /// A policy that keeps every field, as a patron's own export needs.
    pub fn keep_all() -> Policy {
        Policy {
            rules: ALL_FIELDS
                .iter()
                .map(|&f| FieldRule::new(f, FieldAction::Keep))
                .collect(),
            refine_per_record: false,
        }
    }
}

impl FieldRule {
    /// A rule for one field.
    pub fn new(field: PatronField, action: FieldAction) -> Self {
        FieldRule { field, action }
    }
}

impl PluginError {
    /// An error about the input.
    pub fn invalid_input(message: impl Into<String>) -> Self {
        PluginError::InvalidInput(message.into())
    }
}

impl Default for Activity {
    /// No use at all, and visits and e-resource sessions unknown.
    fn default() -> Self {
        Activity {
            loans_30d: 0,
            loans_90d: 0,
            loans_365d: 0,
            renewals_365d: 0,
            holds_365d: 0,
            overdue_now: 0,
            days_since_last_activity: None,
            visits_365d: None,
            eresource_sessions_365d: None,
        }
    }
}

impl Patron {
    /// The value of an extended attribute, if the plugin may see attributes.
    pub fn attribute(&self, key: &str) -> Option<&str> {
        self.attributes
            .as_ref()?
            .iter()
            .find(|a| a.key == key)
            .map(|a| a.value.as_str())
    }

    /// The segment the latest run of `scorer` put the patron in, if the
    /// plugin may see segments.
    pub fn segment(&self, scorer: &str) -> Option<&str> {
        self.segments
            .as_ref()?
            .iter()
            .find(|s| s.scorer == scorer)
            .map(|s| s.segment.as_str())
    }

    /// The first of the patron's preferred channels they can be reached on
    /// (an address for email, a number for SMS); print if none.
    pub fn preferred_channel(&self) -> Channel {
        let reachable = |c: &Channel| match c {
            Channel::Email => self.email.is_some(),
            Channel::Sms => self.phone.is_some(),
            Channel::Webhook | Channel::Print => true,
        };
        self.channels
            .iter()
            .flatten()
            .copied()
            .find(reachable)
            .unwrap_or(Channel::Print)
    }

    /// How a notice opens: `Dear Ana Souza,` or `李明，您好：`, in the
    /// patron's language, without a name if the plugin may not see it.
    pub fn greeting(&self) -> String {
        match (self.reads_chinese(), self.name.as_deref()) {
            (false, Some(n)) => format!("Dear {n},"),
            (false, None) => "Dear reader,".to_string(),
            (true, Some(n)) => format!("{n}，您好："),
            (true, None) => "读者您好：".to_string(),
        }
    }

    /// Whether the patron's locale is Chinese (`zh`, `zh-CN`, `zh-TW`…).
    pub fn reads_chinese(&self) -> bool {
        self.locale
            .as_deref()
            .is_some_and(|l| l.to_ascii_lowercase().starts_with("zh"))
    }
}

impl Message {
    /// A message to `patron` on their preferred channel, tagged with their
    /// language (`zh-CN` or `en`).
    pub fn to(patron: &Patron, subject: String, body: String, dedupe_key: String) -> Message {
        Message {
            channel: patron.preferred_channel(),
            locale: if patron.reads_chinese() {
                "zh-CN"
            } else {
                "en"
            }
            .to_string(),
            subject,
            body,
            dedupe_key,
            send_after: None,
        }
    }
}

/// How a notice is signed: the plugin's `library-name` setting, or "Your
/// library" (图书馆) in the reader's language.
pub fn library_name(chinese: bool) -> String {
    host::config("library-name")
        .unwrap_or_else(|| if chinese { "图书馆" } else { "Your library" }.to_string())
}

impl Channel {
    /// The channel's name as the contract spells it.
    pub fn name(self) -> &'static str {
        match self {
            Channel::Email => "email",
            Channel::Sms => "sms",
            Channel::Webhook => "webhook",
            Channel::Print => "print",
        }
    }
}

/// Registers a [`Scorer`] as this component's `scoring` export, and as its
/// `columnar-scoring` export: the host takes whichever is faster, and the
/// columns never reach the author's code.
#[macro_export]
macro_rules! export_scorer {
    ($ty:ty) => {
        #[doc(hidden)]
        pub struct __LecternScorer;

        impl $crate::__private::scorer::exports::lectern::crm::scoring::Guest for __LecternScorer {
            fn score_batch(
                patrons: ::std::vec::Vec<$crate::Patron>,
            ) -> ::core::result::Result<::std::vec::Vec<$crate::Score>, $crate::PluginError> {
                <$ty as $crate::Scorer>::score_batch(patrons)
            }
        }

        impl $crate::__private::scorer::exports::lectern::crm::columnar_scoring::Guest
            for __LecternScorer
        {
            fn describe() -> $crate::__private::scorer::exports::lectern::crm::columnar_scoring::Codes
            {
                $crate::columns::describe::<$ty>()
            }

            fn score_columns(
                batch: $crate::__private::scorer::exports::lectern::crm::columnar_scoring::PatronColumns,
            ) -> ::core::result::Result<
                $crate::__private::scorer::exports::lectern::crm::columnar_scoring::Scores,
                $crate::PluginError,
            > {
                $crate::columns::score_columns::<$ty>(batch)
            }
        }

        $crate::__private::scorer::export_columnar_scorer_world!(
            __LecternScorer with_types_in $crate::__private::scorer
        );
    };
}

/// Registers a [`Messenger`] as this component's `messaging` export, and
/// as its `passing` and `awareness` exports: title-wanted notices go to
/// [`Messenger::compose_title_wanted`] and current-awareness digests to
/// [`Messenger::compose_digest`].
#[macro_export]
macro_rules! export_messenger {
    ($ty:ty) => {
        #[doc(hidden)]
        pub struct __LecternMessenger;

        impl $crate::__private::messenger::exports::lectern::crm::messaging::Guest
            for __LecternMessenger
        {
            fn compose(
                event: $crate::Event,
                recipient: $crate::Patron,
            ) -> ::core::result::Result<::std::vec::Vec<$crate::Message>, $crate::PluginError>
            {
                <$ty as $crate::Messenger>::compose(&event, &recipient)
            }

            fn compose_batch(
                requests: ::std::vec::Vec<$crate::Request>,
            ) -> ::std::vec::Vec<
                ::core::result::Result<::std::vec::Vec<$crate::Message>, $crate::PluginError>,
            > {
                <$ty as $crate::Messenger>::compose_batch(requests)
            }
        }

        impl $crate::__private::messenger::exports::lectern::crm::passing::Guest
            for __LecternMessenger
        {
            fn compose_title_wanted(
                requests: ::std::vec::Vec<$crate::WantedRequest>,
            ) -> ::std::vec::Vec<
                ::core::result::Result<::std::vec::Vec<$crate::Message>, $crate::PluginError>,
            > {
                requests
                    .iter()
                    .map(|r| <$ty as $crate::Messenger>::compose_title_wanted(&r.event, &r.recipient))
                    .collect()
            }
        }

        impl $crate::__private::messenger::exports::lectern::crm::awareness::Guest
            for __LecternMessenger
        {
            fn compose_digest(
                requests: ::std::vec::Vec<$crate::DigestRequest>,
            ) -> ::std::vec::Vec<
                ::core::result::Result<::std::vec::Vec<$crate::Message>, $crate::PluginError>,
            > {
                requests
                    .iter()
                    .map(|r| <$ty as $crate::Messenger>::compose_digest(&r.digest, &r.recipient))
                    .collect()
            }
        }

        $crate::__private::messenger::export_messenger_world!(
            __LecternMessenger with_types_in $crate::__private::messenger
        );
    };
}

/// Registers a [`PrivacyFilter`] as this component's `privacy` export.
#[macro_export]
macro_rules! export_privacy_filter {
    ($ty:ty) => {
        #[doc(hidden)]
        pub struct __LecternPrivacyFilter;

        impl $crate::__private::privacy_filter::exports::lectern::crm::privacy::Guest
            for __LecternPrivacyFilter
        {
            fn policy_for(
                context: $crate::AccessContext,
            ) -> ::core::result::Result<$crate::Policy, $crate::PluginError> {
                <$ty as $crate::PrivacyFilter>::policy(&context)
            }

            fn refine(
                context: $crate::AccessContext,
                patron: $crate::Patron,
            ) -> ::core::result::Result<::std::vec::Vec<$crate::FieldRule>, $crate::PluginError>
            {
                <$ty as $crate::PrivacyFilter>::refine(&context, &patron)
            }
        }

        $crate::__private::privacy_filter::export_privacy_filter_world!(
            __LecternPrivacyFilter with_types_in $crate::__private::privacy_filter
        );
    };
}

/// Registers a [`Forecaster`] as this component's `forecasting` export.
#[macro_export]
macro_rules! export_forecaster {
    ($ty:ty) => {
        #[doc(hidden)]
        pub struct __LecternForecaster;

        impl $crate::__private::forecaster::exports::lectern::crm::forecasting::Guest
            for __LecternForecaster
        {
            fn forecast_batch(
                series: ::std::vec::Vec<$crate::Series>,
                horizon: u32,
            ) -> ::std::vec::Vec<::core::result::Result<$crate::Forecast, $crate::PluginError>> {
                <$ty as $crate::Forecaster>::forecast_batch(series, horizon)
            }
        }

        $crate::__private::forecaster::export_forecaster_world!(
            __LecternForecaster with_types_in $crate::__private::forecaster
        );
    };
}
