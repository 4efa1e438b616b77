//! The wall around the WIT contract. Each released version of
//! `lectern:crm` has one private module here with its generated bindings
//! and the conversions to and from the host model; nothing outside `api`
//! names a generated type's version. The core speaks only the host model.

pub(crate) mod v0_1;

/// The versions of the `lectern:crm` contract this host runs plugins for,
/// oldest first. A plugin's manifest names one in `plugin.api-version`.
pub const SUPPORTED_API_VERSIONS: &[&str] = &["0.1.0"];

/// The fully qualified name of `interface` (such as `scoring`) in contract
/// `version`: `lectern:crm/scoring@0.1.0`.
pub(crate) fn interface(interface: &str, version: &str) -> String {
    format!("lectern:crm/{interface}@{version}")
}

/// Whether this host runs plugins built against `version`.
pub(crate) fn supported(version: &str) -> bool {
    SUPPORTED_API_VERSIONS.contains(&version)
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_supported_versions_are_the_frozen_packages_in_wit() {
        let wit = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../wit");
        for v in super::SUPPORTED_API_VERSIONS {
            let text = std::fs::read_dir(&wit)
                .unwrap()
                .filter_map(|e| std::fs::read_to_string(e.unwrap().path()).ok())
                .collect::<String>();
            assert!(
                text.contains(&format!("package lectern:crm@{v};")),
                "no lectern:crm@{v} package in wit/"
            );
        }
        assert_eq!(
            super::interface("scoring", "0.1.0"),
            "lectern:crm/scoring@0.1.0"
        );
    }
}
