//! `lectern:crm@0.2.0`, the newest: bindings and conversions. It adds the
//! `address` patron field, so a policy can rule on the postal address, the
//! `columnar-scorer` world, the `passing-messenger` world, the
//! `awareness-messenger` world, and the `forecaster` world.

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

/// The `passing-messenger` world: `messaging` and `passing`. Only its
/// `passing` export is called through these bindings; every other event
/// goes through [`messenger`].
pub(crate) mod passing {
    wasmtime::component::bindgen!({
        path: "../../wit/v0.2.0",
        world: "passing-messenger",
        with: {
            "lectern:crm/types": crate::api::v0_2::scorer::lectern::crm::types,
            "lectern:crm/host": crate::api::v0_2::scorer::lectern::crm::host,
            "lectern:crm/messaging": crate::api::v0_2::messenger::exports::lectern::crm::messaging,
        },
    });

    pub(crate) use exports::lectern::crm::passing::{TitleWanted, WantedRequest};

    /// One title-wanted request, as the contract carries it.
    pub(crate) fn request(
        e: &crate::model::Event,
        recipient: crate::model::Patron,
    ) -> Option<WantedRequest> {
        let crate::model::EventKind::TitleWanted {
            loan,
            waiting,
            overdue,
        } = &e.kind
        else {
            return None;
        };
        Some(WantedRequest {
            event: TitleWanted {
                id: e.id.clone(),
                at: e.at.timestamp(),
                loan: super::loan_of(loan),
                waiting: *waiting,
                overdue: *overdue,
            },
            recipient: super::patron_of(recipient),
        })
    }
}

/// The `forecaster` world: `forecasting`, which sees monthly aggregates and
/// no patron.
pub(crate) mod forecaster {
    wasmtime::component::bindgen!({
        path: "../../wit/v0.2.0",
        world: "forecaster",
        with: {
            "lectern:crm/types": crate::api::v0_2::scorer::lectern::crm::types,
            "lectern:crm/host": crate::api::v0_2::scorer::lectern::crm::host,
        },
    });

    pub(crate) use exports::lectern::crm::forecasting::{Forecast, Month, Series};
}

/// The `awareness-messenger` world: `messaging`, `passing` and
/// `awareness`. Only its `awareness` export is called through these
/// bindings.
pub(crate) mod awareness {
    wasmtime::component::bindgen!({
        path: "../../wit/v0.2.0",
        world: "awareness-messenger",
        with: {
            "lectern:crm/types": crate::api::v0_2::scorer::lectern::crm::types,
            "lectern:crm/host": crate::api::v0_2::scorer::lectern::crm::host,
            "lectern:crm/messaging": crate::api::v0_2::messenger::exports::lectern::crm::messaging,
            "lectern:crm/passing": crate::api::v0_2::passing::exports::lectern::crm::passing,
        },
    });

    use exports::lectern::crm::awareness::{Digest, DigestRequest, DigestTitle, Pick};

    /// One digest request, as the contract carries it.
    pub(crate) fn request(
        e: &crate::model::Event,
        recipient: crate::model::Patron,
    ) -> Option<DigestRequest> {
        let crate::model::EventKind::CurrentAwareness {
            period,
            subjects,
            rising,
            titles,
        } = &e.kind
        else {
            return None;
        };
        Some(DigestRequest {
            digest: Digest {
                id: e.id.clone(),
                at: e.at.timestamp(),
                period: period.clone(),
                subjects: subjects.clone(),
                rising: rising.clone(),
                titles: titles
                    .iter()
                    .map(|t| DigestTitle {
                        title: t.title.clone(),
                        subject: t.subject.clone(),
                        why: match t.why {
                            crate::model::Pick::NewArrival => Pick::NewArrival,
                            crate::model::Pick::InDemand => Pick::InDemand,
                        },
                    })
                    .collect(),
            },
            recipient: super::patron_of(recipient),
        })
    }
}
