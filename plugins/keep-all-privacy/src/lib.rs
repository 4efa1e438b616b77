//! `keep-all-privacy`: a policy that keeps every field for every purpose
//! and role. The host's tests use it to see exactly what a manifest alone
//! lets through, now that a policy is always in force; a library must
//! never install it.

use lectern_plugin::{AccessContext, PluginError, Policy, PrivacyFilter};

struct KeepAll;

impl PrivacyFilter for KeepAll {
    fn policy(_context: &AccessContext) -> Result<Policy, PluginError> {
        Ok(Policy::keep_all())
    }
}

lectern_plugin::export_privacy_filter!(KeepAll);
