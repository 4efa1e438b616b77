//! The wall around the WIT contract. Each released version of
//! `lectern:crm` has one private module here with its generated bindings
//! and the conversions to and from the host model; nothing outside `api`
//! names a generated type's version. The core speaks only the host model.

//!
//! Each version's package lives in its own folder, `wit/v<version>/`; a
//! released one is never edited again (a test holds 0.1.0 to its hash).
//! The host's own `host` interface is implemented once, for the newest
//! version; an older version's calls forward to it.

pub(crate) mod columns;
mod contract;
pub(crate) mod v0_1;
pub(crate) mod v0_2;

/// The versions of the `lectern:crm` contract this host runs plugins for,
/// oldest first. A plugin's manifest names one in `plugin.api-version`.
pub const SUPPORTED_API_VERSIONS: &[&str] = &["0.1.0", "0.2.0"];

/// One supported version of the contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Api {
    V0_1,
    V0_2,
}

impl Api {
    /// The version a manifest's `plugin.api-version` names, if this host
    /// runs it.
    pub(crate) fn of(version: &str) -> Option<Api> {
        match version {
            "0.1.0" => Some(Api::V0_1),
            "0.2.0" => Some(Api::V0_2),
            _ => None,
        }
    }
}

/// A value per supported version: a typed component of each.
#[derive(Clone)]
pub(crate) enum Versioned<A, B> {
    V0_1(A),
    V0_2(B),
}

/// Runs `$body` with `$b` naming the bindings module of `$pre`'s version
/// and `$p` its inner value: one body, every version.
macro_rules! per_version {
    ($pre:expr, |$b:ident, $p:ident| $body:expr) => {
        match $pre {
            crate::api::Versioned::V0_1($p) => {
                use crate::api::v0_1 as $b;
                $body
            }
            crate::api::Versioned::V0_2($p) => {
                use crate::api::v0_2 as $b;
                $body
            }
        }
    };
}
pub(crate) use per_version;

/// The fully qualified name of `interface` (such as `scoring`) in contract
/// `version`: `lectern:crm/scoring@0.1.0`.
pub(crate) fn interface(interface: &str, version: &str) -> String {
    format!("lectern:crm/{interface}@{version}")
}

/// What to do about a plugin built against `version`, which this host does
/// not run: upgrade Lectern for a newer one, rebuild the plugin for an
/// older one.
pub(crate) fn unsupported_advice(version: &str) -> String {
    let runs = format!(
        "this Lectern runs plugins built against lectern:crm@{}",
        SUPPORTED_API_VERSIONS.join(" and @")
    );
    let newest = SUPPORTED_API_VERSIONS[SUPPORTED_API_VERSIONS.len() - 1];
    let parse = |v: &str| -> Option<(u64, u64, u64)> {
        let mut parts = v.split('.').map(|n| n.parse::<u64>().ok());
        Some((parts.next()??, parts.next()??, parts.next()??))
    };
    match (parse(version), parse(newest)) {
        (Some(v), Some(n)) if v > n => format!(
            "the plugin was built against lectern:crm@{version}, newer than this Lectern; \
             {runs}: upgrade Lectern to run it"
        ),
        (Some(_), _) => format!(
            "the plugin was built against lectern:crm@{version}; {runs}: rebuild the plugin \
             against @{newest}"
        ),
        _ => format!("`{version}` is not a version such as \"{newest}\"; {runs}"),
    }
}

/// Whether this host runs plugins built against `version`.
pub(crate) fn supported(version: &str) -> bool {
    SUPPORTED_API_VERSIONS.contains(&version)
}

#[cfg(test)]
mod tests {
    use sha2::Digest as _;

    fn wit() -> std::path::PathBuf {
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../wit")
    }

    #[test]
    fn the_supported_versions_are_the_packages_in_wit() {
        for v in super::SUPPORTED_API_VERSIONS {
            let text = std::fs::read_to_string(wit().join(format!("v{v}/crm.wit")))
                .unwrap_or_else(|e| panic!("wit/v{v}/crm.wit: {e}"));
            assert!(
                text.contains(&format!("package lectern:crm@{v};")),
                "wit/v{v}/ does not hold lectern:crm@{v}"
            );
            assert!(super::Api::of(v).is_some(), "{v} has no bindings");
        }
        assert_eq!(
            super::interface("scoring", "0.1.0"),
            "lectern:crm/scoring@0.1.0"
        );
    }

    /// A released version is frozen: plugins built against it must keep
    /// working. Change the newest version's folder, or add a new one; never
    /// this.
    #[test]
    fn released_0_1_0_is_frozen() {
        let bytes = std::fs::read(wit().join("v0.1.0/crm.wit")).unwrap();
        assert_eq!(
            hex::encode(sha2::Sha256::digest(&bytes)),
            "a46f2230d3689489dddc6b16ffdeda3ee1b63bfc106ae5c19aa702450eeb92c7",
            "wit/v0.1.0/crm.wit was edited; it is released and frozen"
        );
    }
}
