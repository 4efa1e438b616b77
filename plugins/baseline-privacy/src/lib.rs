//! `baseline-privacy`: a sensible default policy.
//!
//! - Scoring sees the token, the category and the activity, never names or
//!   contacts.
//! - Analytics, which leaves the host only as aggregates of at least k
//!   readers, sees categories, branches, attributes (a reader's department)
//!   and segments, never identity.
//! - Subject interests (reading history) pass only for patrons who consented
//!   to that use, whatever the purpose, except in the patron's own export.
//! - Messaging sees the name, the contacts and the patron's segments;
//!   transactional notices never see reading history (the loan or hold in
//!   question travels in the event itself), marketing sees it only with
//!   consent.
//! - Staff see by role: the circulation desk identifies and contacts, an
//!   analyst sees use without identity, an administrator sees everything.

use lectern_plugin::{
    AccessContext, Actor, FieldAction, FieldRule, Patron, PatronField, PluginError, Policy,
    PrivacyFilter, Purpose,
};

use FieldAction::{Generalise, Keep, Mask, Pseudonymise};
use PatronField as F;

struct Baseline;

impl PrivacyFilter for Baseline {
    fn policy(context: &AccessContext) -> Result<Policy, PluginError> {
        let (rules, refine_per_record): (&[(PatronField, FieldAction)], bool) =
            match (context.purpose, &context.actor) {
                (Purpose::Scoring, _) => (
                    &[
                        (F::Category, Keep),
                        (F::HomeBranch, Keep),
                        (F::AgeBand, Keep),
                        (F::EnrolledOn, Keep),
                        (F::ExpiresOn, Keep),
                        (F::Attributes, Keep),
                        (F::Consents, Keep),
                        (F::Activity, Keep),
                        (F::Interests, Keep),
                    ],
                    // The host withholds reading history without consent
                    // itself, so scoring needs no call per record.
                    false,
                ),
                // A printed letter also carries the card number and the
                // postal address, which only the host prints: no plugin
                // is ever handed the address.
                (Purpose::MessagingTransactional, _) => (
                    &[
                        (F::CardNumber, Keep),
                        (F::Name, Keep),
                        (F::Address, Keep),
                        (F::Email, Keep),
                        (F::Phone, Keep),
                        (F::Locale, Keep),
                        (F::Channels, Keep),
                        (F::ExpiresOn, Keep),
                        (F::Segments, Keep),
                    ],
                    false,
                ),
                (Purpose::MessagingMarketing, _) => (
                    &[
                        (F::Name, Keep),
                        (F::Email, Keep),
                        (F::Phone, Keep),
                        (F::Locale, Keep),
                        (F::Channels, Keep),
                        (F::Category, Keep),
                        (F::Consents, Keep),
                        (F::Interests, Keep),
                        (F::Segments, Keep),
                    ],
                    true,
                ),
                (Purpose::StaffView, Actor::Staff(role)) => match role.as_str() {
                    "circulation-desk" => (
                        &[
                            (F::CardNumber, Keep),
                            (F::Name, Keep),
                            (F::Email, Mask),
                            (F::Phone, Mask),
                            (F::Category, Keep),
                            (F::HomeBranch, Keep),
                            (F::ExpiresOn, Keep),
                            (F::Locale, Keep),
                            (F::Channels, Keep),
                        ],
                        false,
                    ),
                    "analyst" => (
                        &[
                            (F::CardNumber, Pseudonymise),
                            (F::Consents, Keep),
                            (F::AgeBand, Keep),
                            (F::Category, Keep),
                            (F::HomeBranch, Keep),
                            (F::EnrolledOn, Generalise),
                            (F::ExpiresOn, Generalise),
                            (F::Activity, Generalise),
                            (F::Interests, Generalise),
                            (F::Segments, Keep),
                        ],
                        true,
                    ),
                    "administrator" => return Ok(Policy::keep_all()),
                    // A role this policy does not know sees nothing but the token.
                    _ => (&[], false),
                },
                // Staff view by a plugin is not a thing: nothing.
                (Purpose::StaffView, Actor::Plugin(_)) => (&[], false),
                // Analytics leaves the host only as aggregates of at least k
                // readers, so it may group by attributes such as a
                // reader's department.
                (Purpose::Analytics, _) => (
                    &[
                        (F::Consents, Keep),
                        (F::AgeBand, Keep),
                        (F::Category, Keep),
                        (F::HomeBranch, Keep),
                        (F::Attributes, Keep),
                        (F::EnrolledOn, Generalise),
                        (F::Activity, Generalise),
                        (F::Interests, Generalise),
                        (F::Segments, Keep),
                    ],
                    true,
                ),
                // A patron's own export, made by the staff who handle
                // patrons' rights; no other role exports a reader whole.
                (Purpose::PatronExport, Actor::Staff(role))
                    if matches!(role.as_str(), "administrator" | "privacy-officer") =>
                {
                    return Ok(Policy::keep_all());
                }
                (Purpose::PatronExport, _) => (&[], false),
            };
        Ok(Policy {
            rules: rules.iter().map(|&(f, a)| FieldRule::new(f, a)).collect(),
            refine_per_record,
        })
    }

    fn refine(context: &AccessContext, record: &Patron) -> Result<Vec<FieldRule>, PluginError> {
        let consents = record.consents.as_ref();
        let mut rules = Vec::new();
        // Reading history serves only the readers who opted in; without it,
        // counts are all anyone uses.
        if !consents.is_some_and(|c| c.reading_history) {
            rules.push(FieldRule::new(F::Interests, FieldAction::Drop));
        }
        // No consent, no marketing: leave nothing to reach them with.
        if context.purpose == Purpose::MessagingMarketing && !consents.is_some_and(|c| c.marketing)
        {
            for f in [F::Name, F::Email, F::Phone] {
                rules.push(FieldRule::new(f, FieldAction::Drop));
            }
        }
        Ok(rules)
    }
}

lectern_plugin::export_privacy_filter!(Baseline);
