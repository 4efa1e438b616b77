//! `lectern:crm@0.2.0`, the newest: bindings and conversions. It adds the
//! `address` patron field, so a policy can rule on the postal address.

crate::api::contract::contract!(v0_2, "../../wit/v0.2.0", Address);
