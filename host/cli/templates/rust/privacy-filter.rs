//! `{{id}}`: scoring sees use, the circulation desk sees who, nobody else
//! sees anything. A field without a rule is dropped.

use lectern_plugin::{
    AccessContext, Actor, FieldAction, FieldRule, PatronField, PluginError, Policy, PrivacyFilter,
    Purpose,
};

struct Plugin;

impl PrivacyFilter for Plugin {
    fn policy(context: &AccessContext) -> Result<Policy, PluginError> {
        let rules = match (context.purpose, &context.actor) {
            (Purpose::Scoring, _) => vec![
                FieldRule::new(PatronField::Category, FieldAction::Keep),
                FieldRule::new(PatronField::Activity, FieldAction::Keep),
            ],
            (Purpose::StaffView, Actor::Staff(role)) if role == "circulation-desk" => vec![
                FieldRule::new(PatronField::CardNumber, FieldAction::Keep),
                FieldRule::new(PatronField::Name, FieldAction::Keep),
                FieldRule::new(PatronField::Email, FieldAction::Mask),
            ],
            _ => Vec::new(),
        };
        Ok(Policy {
            rules,
            refine_per_record: false,
        })
    }
}

lectern_plugin::export_privacy_filter!(Plugin);
