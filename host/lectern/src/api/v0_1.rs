//! `lectern:crm@0.1.0`, released and frozen: bindings and conversions.

crate::api::contract::contract!(v0_1, "../../wit/v0.1.0");
