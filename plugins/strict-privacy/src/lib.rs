//! `strict-privacy`: a data-minimising policy in the spirit of the GDPR.
//! Swap it for `baseline-privacy` to tighten every purpose without
//! recompiling anything.
//!
//! - Scoring sees the category, activity counts in bands, and which
//!   attributes a patron has (not their values).
//! - Transactional notices see the contacts they are sent to and the
//!   locale, not the patron's name.
//! - Marketing sees contacts only with marketing consent.
//! - Staff see the least their role needs; nobody but the patron, in their
//!   own export, sees a birth date.
//! - Subject interests pass only with reading-history consent, and only to
//!   scoring and marketing, generalised to their main class.

use lectern_plugin::{
    AccessContext, Actor, FieldAction, FieldRule, Patron, PatronField, PluginError, Policy,
    PrivacyFilter, Purpose,
};

use FieldAction::{Drop, Generalise, Keep, Mask, Pseudonymise};
use PatronField as F;

struct Strict;

impl PrivacyFilter for Strict {
    fn policy(context: &AccessContext) -> Result<Policy, PluginError> {
        let (rules, refine_per_record): (&[(PatronField, FieldAction)], bool) =
            match (context.purpose, &context.actor) {
                (Purpose::Scoring, _) => (
                    &[
                        (F::Category, Keep),
                        (F::Attributes, Generalise),
                        (F::Consents, Keep),
                        (F::Activity, Generalise),
                        (F::Interests, Generalise),
                    ],
                    true,
                ),
                (Purpose::MessagingTransactional, _) => (
                    &[
                        (F::Email, Keep),
                        (F::Phone, Keep),
                        (F::Locale, Keep),
                        (F::Channels, Keep),
                    ],
                    false,
                ),
                (Purpose::MessagingMarketing, _) => (
                    &[
                        (F::Email, Keep),
                        (F::Phone, Keep),
                        (F::Locale, Keep),
                        (F::Channels, Keep),
                        (F::Consents, Keep),
                        (F::Interests, Generalise),
                        (F::Segments, Keep),
                    ],
                    true,
                ),
                (Purpose::StaffView, Actor::Staff(role)) => match role.as_str() {
                    "circulation-desk" => (
                        &[(F::CardNumber, Keep), (F::Name, Keep), (F::ExpiresOn, Keep)],
                        false,
                    ),
                    "analyst" => (
                        &[
                            (F::CardNumber, Pseudonymise),
                            (F::AgeBand, Generalise),
                            (F::Category, Keep),
                            (F::Activity, Generalise),
                        ],
                        false,
                    ),
                    "administrator" => (
                        &[
                            (F::CardNumber, Keep),
                            (F::Name, Keep),
                            (F::Email, Mask),
                            (F::Phone, Mask),
                            (F::Category, Keep),
                            (F::HomeBranch, Keep),
                            (F::ExpiresOn, Keep),
                            (F::Consents, Keep),
                        ],
                        false,
                    ),
                    _ => (&[], false),
                },
                (Purpose::StaffView, Actor::Plugin(_)) => (&[], false),
                (Purpose::Analytics, _) => (
                    &[
                        (F::Category, Keep),
                        (F::HomeBranch, Keep),
                        (F::Activity, Generalise),
                    ],
                    false,
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
        let mut rules = vec![FieldRule::new(F::Consents, Drop)];
        if !consents.is_some_and(|c| c.reading_history) {
            rules.push(FieldRule::new(F::Interests, Drop));
        }
        if context.purpose == Purpose::MessagingMarketing && !consents.is_some_and(|c| c.marketing)
        {
            for f in [F::Email, F::Phone, F::Channels] {
                rules.push(FieldRule::new(f, Drop));
            }
        }
        Ok(rules)
    }
}

lectern_plugin::export_privacy_filter!(Strict);
