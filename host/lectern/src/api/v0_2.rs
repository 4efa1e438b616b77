//! `lectern:crm@0.2.0`, the newest: bindings and conversions. It adds the
//! `address` patron field, so a policy can rule on the postal address, and
//! the `columnar-scorer` world.

crate::api::contract::contract!(v0_2, "../../wit/v0.2.0", Address);

/// The `columnar-scorer` world: `scoring` and `columnar-scoring`. Only its
/// columnar export is called through these bindings; the record form goes
/// through [`scorer`].
pub(crate) mod columnar {
    wasmtime::component::bindgen!({
        path: "../../wit/v0.2.0",
        world: "columnar-scorer",
        with: {
            "lectern:crm/types": crate::api::v0_2::scorer::lectern::crm::types,
            "lectern:crm/host": crate::api::v0_2::scorer::lectern::crm::host,
        },
    });

    pub(crate) use exports::lectern::crm::columnar_scoring::{
        ActivityColumns, Codes, PatronColumns, Ragged, Scores,
    };
}
