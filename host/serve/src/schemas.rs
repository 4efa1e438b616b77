//! What the request bodies look like, for the OpenAPI document only: each
//! type here mirrors what the library's reader of that body accepts, so
//! that the document promises neither more nor less than the service
//! takes. schemathesis checks the two against each other.

#![allow(dead_code)]
// utoipa's derive expands to paths this lint flags.
#![allow(unused_qualifications)]

use chrono::{DateTime, NaiveDate, Utc};
use serde::Deserialize;
use utoipa::ToSchema;
use utoipa::openapi::schema::{KnownFormat, ObjectBuilder, OneOfBuilder, SchemaFormat, Type};
use utoipa::openapi::{RefOr, Schema};

/// A date or null, as a choice of the two, so that a generator of
/// examples keeps the date's format.
fn nullable(format: KnownFormat) -> RefOr<Schema> {
    OneOfBuilder::new()
        .item(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .format(Some(SchemaFormat::KnownFormat(format))),
        )
        .item(ObjectBuilder::new().schema_type(Type::Null))
        .into()
}

fn nullable_date() -> RefOr<Schema> {
    nullable(KnownFormat::Date)
}

/// An id as an ILS writes it: a whole number, or text with something in
/// it.
#[derive(Deserialize, ToSchema)]
#[serde(untagged)]
pub(crate) enum IlsId {
    /// A whole number.
    Number(i64),
    /// Text.
    Text(IdText),
}

/// An id as text: something in it besides spaces, at most 127
/// characters.
#[derive(Deserialize, ToSchema)]
#[schema(pattern = r"^\s{0,63}\S[\s\S]{0,63}$")]
pub(crate) struct IdText(String);

/// `loan`
#[derive(Deserialize, ToSchema)]
pub(crate) enum LoanTag {
    #[serde(rename = "loan")]
    Tag,
}

/// `returned`
#[derive(Deserialize, ToSchema)]
pub(crate) enum ReturnedTag {
    #[serde(rename = "returned")]
    Tag,
}

/// `due-date`
#[derive(Deserialize, ToSchema)]
pub(crate) enum DueDateTag {
    #[serde(rename = "due-date")]
    Tag,
}

/// `hold`
#[derive(Deserialize, ToSchema)]
pub(crate) enum HoldTag {
    #[serde(rename = "hold")]
    Tag,
}

/// `hold-state`
#[derive(Deserialize, ToSchema)]
pub(crate) enum HoldStateTag {
    #[serde(rename = "hold-state")]
    Tag,
}

/// A loan, new or updated, written whole.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct LoanChange {
    change: LoanTag,
    /// The ILS's loan id.
    id: String,
    /// The item's barcode or id.
    item: Option<String>,
    /// The title.
    title: Option<String>,
    /// The subject.
    subject: Option<String>,
    /// When it was borrowed.
    loaned_on: NaiveDate,
    /// When it is due.
    #[schema(schema_with = nullable_date)]
    due_on: Option<NaiveDate>,
    /// When it came back.
    #[schema(schema_with = nullable_date)]
    returned_on: Option<NaiveDate>,
    /// Renewals so far.
    #[serde(default)]
    #[schema(minimum = 0, maximum = 4294967295u64)]
    renewals: u32,
}

/// A loan came back.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ReturnedChange {
    change: ReturnedTag,
    /// The ILS's loan id.
    loan: String,
    /// The day.
    on: NaiveDate,
}

/// A loan's due date moved.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct DueDateChange {
    change: DueDateTag,
    /// The ILS's loan id.
    loan: String,
    /// The new due date.
    due_on: NaiveDate,
    /// Renewals so far.
    #[schema(minimum = 0, maximum = 4294967295u64)]
    renewals: Option<u32>,
}

/// A hold, new or updated, written whole.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct HoldChange {
    change: HoldTag,
    /// The ILS's hold id.
    id: String,
    /// The title.
    title: Option<String>,
    /// When it was placed.
    placed_on: NaiveDate,
    /// placed, waiting, cancelled or filled.
    status: Option<String>,
    /// Where it is picked up.
    pickup_branch: Option<String>,
    /// Until when it waits.
    #[schema(schema_with = nullable_date)]
    expires_on: Option<NaiveDate>,
}

/// A hold changed state.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct HoldStateChange {
    change: HoldStateTag,
    /// The ILS's hold id.
    hold: String,
    /// placed, waiting, cancelled or filled.
    status: String,
    /// Until when it waits.
    #[schema(schema_with = nullable_date)]
    expires_on: Option<NaiveDate>,
}

/// The change an event brings to the records, named by `change`.
#[derive(Deserialize, ToSchema)]
#[serde(untagged)]
pub(crate) enum Change {
    Loan(LoanChange),
    Returned(ReturnedChange),
    DueDate(DueDateChange),
    Hold(HoldChange),
    HoldState(HoldStateChange),
}

/// An event in Lectern's own shape, for an ILS without an adapter.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct Event {
    /// The sender's id for the event: the same id is accepted once.
    #[schema(pattern = r"^[^\u0000-\u001f\u007f-\u009f]{1,200}$")]
    id: String,
    /// What happened, in the sender's words.
    #[schema(pattern = r"^[^\u0000-\u001f\u007f-\u009f]{1,200}$")]
    kind: String,
    /// When it happened.
    at: DateTime<Utc>,
    /// The patron's id in the ILS; absent or null for an anonymised event.
    #[schema(pattern = r"^[^\u0000-\u001f\u007f-\u009f]{1,200}$")]
    patron: Option<String>,
    /// The change to the records, if any.
    change: Option<Change>,
}

// The ILSes' own bodies: only what Lectern requires of them is described.
// Every other field may be there, of any type: what Lectern reads of them
// it takes when it can and leaves when it cannot, as an ILS's next version
// adds and changes columns.

/// A Koha checkout (`issues` or `old_issues`) as `TO_JSON` writes it;
/// Lectern also reads `borrowernumber`, `itemnumber`, `returndate` and
/// `renewals_count` when they are there.
#[derive(Deserialize, ToSchema)]
pub(crate) struct KohaCheckout {
    issue_id: IlsId,
    issuedate: DateTime<Utc>,
    date_due: DateTime<Utc>,
}

/// A Koha hold (`reserves` or `old_reserves`); Lectern also reads
/// `borrowernumber`, `branchcode`, `expirationdate` and `timestamp`.
#[derive(Deserialize, ToSchema)]
pub(crate) struct KohaHold {
    reserve_id: IlsId,
    reservedate: NaiveDate,
}

/// What `after_circ_action` is called with.
#[derive(Deserialize, ToSchema)]
pub(crate) struct KohaCircPayload {
    checkout: KohaCheckout,
}

/// What `after_hold_action` is called with.
#[derive(Deserialize, ToSchema)]
pub(crate) struct KohaHoldPayload {
    hold: KohaHold,
}

/// Koha's circulation actions.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub(crate) enum KohaCircAction {
    Checkout,
    Renewal,
    Checkin,
}

/// Koha's hold actions.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub(crate) enum KohaHoldAction {
    Place,
    Waiting,
    Transfer,
    Processing,
    Suspend,
    Resume,
    Cancel,
    Fill,
}

/// `after_circ_action`'s parameters, as the connector forwards them.
#[derive(Deserialize, ToSchema)]
pub(crate) struct KohaCircHook {
    action: KohaCircAction,
    payload: KohaCircPayload,
}

/// `after_hold_action`'s parameters.
#[derive(Deserialize, ToSchema)]
pub(crate) struct KohaHoldHook {
    action: KohaHoldAction,
    payload: KohaHoldPayload,
}

/// One of Koha's hooks.
#[derive(Deserialize, ToSchema)]
#[serde(untagged)]
pub(crate) enum KohaHook {
    /// A checkout, renewal or check-in.
    Circulation(KohaCircHook),
    /// A hold's change.
    Hold(KohaHoldHook),
}

/// What mod-pubsub posts to a subscriber: the payload alone. Lectern also
/// reads `userId`, and `dueDate` or `returnDate` as the event type has
/// them.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct FolioPubsubPayload {
    loan_id: IlsId,
    due_date: DateTime<Utc>,
}

/// A FOLIO loan, as mod-circulation-storage stores it; Lectern also reads
/// `dueDate`, `returnDate`, `renewalCount` and `item`.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct FolioLoan {
    id: IlsId,
    user_id: IlsId,
    loan_date: DateTime<Utc>,
}

/// A FOLIO request; Lectern also reads `status`, `pickupServicePointId`,
/// `holdShelfExpirationDate`, `item` and `instance`.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct FolioRequest {
    id: IlsId,
    requester_id: IlsId,
    request_date: DateTime<Utc>,
}

/// A domain event's kinds.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "UPPERCASE")]
pub(crate) enum DomainType {
    Created,
    Updated,
    Deleted,
}

/// `data` of a loan's domain event.
#[derive(Deserialize, ToSchema)]
pub(crate) struct LoanData {
    new: FolioLoan,
}

/// `data` of a request's domain event.
#[derive(Deserialize, ToSchema)]
pub(crate) struct RequestData {
    new: FolioRequest,
}

/// A domain event about a loan.
#[derive(Deserialize, ToSchema)]
pub(crate) struct LoanDomainEvent {
    id: IlsId,
    #[serde(rename = "type")]
    kind: DomainType,
    /// Milliseconds since 1970.
    #[schema(minimum = -8000000000000000i64, maximum = 8000000000000000i64)]
    timestamp: i64,
    data: LoanData,
}

/// A domain event about a request.
#[derive(Deserialize, ToSchema)]
pub(crate) struct RequestDomainEvent {
    id: IlsId,
    #[serde(rename = "type")]
    kind: DomainType,
    /// Milliseconds since 1970.
    #[schema(minimum = -8000000000000000i64, maximum = 8000000000000000i64)]
    timestamp: i64,
    data: RequestData,
}

/// The Evergreen hooks that describe a loan.
#[derive(Deserialize, ToSchema)]
pub(crate) enum EvergreenLoanHook {
    #[serde(rename = "checkout")]
    Checkout,
    #[serde(rename = "checkout.due")]
    CheckoutDue,
}

/// A circulation as the templates write it; Lectern also reads `usr`,
/// `barcode`, `title` and `due_date`.
#[derive(Deserialize, ToSchema)]
pub(crate) struct EvergreenCirc {
    id: IlsId,
    xact_start: DateTime<Utc>,
}

/// A returned circulation; Lectern also reads `usr` and `checkin_time`.
#[derive(Deserialize, ToSchema)]
pub(crate) struct EvergreenCheckinCirc {
    id: IlsId,
}

/// A hold as the template writes it; Lectern also reads `usr`, `title`,
/// `shelf_expire_time` and `pickup_lib`.
#[derive(Deserialize, ToSchema)]
pub(crate) struct EvergreenHold {
    id: IlsId,
    request_time: DateTime<Utc>,
}

/// `checkout` or `checkout.due`.
#[derive(Deserialize, ToSchema)]
pub(crate) struct EvergreenLoanEvent {
    hook: EvergreenLoanHook,
    event: IlsId,
    circ: EvergreenCirc,
}

/// Only `checkin`.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub(crate) enum EvergreenCheckinHook {
    Checkin,
}

/// `checkin`.
#[derive(Deserialize, ToSchema)]
pub(crate) struct EvergreenCheckinEvent {
    hook: EvergreenCheckinHook,
    event: IlsId,
    circ: EvergreenCheckinCirc,
}

/// Only `hold.available`.
#[derive(Deserialize, ToSchema)]
pub(crate) enum EvergreenHoldHook {
    #[serde(rename = "hold.available")]
    HoldAvailable,
}

/// `hold.available`.
#[derive(Deserialize, ToSchema)]
pub(crate) struct EvergreenHoldEvent {
    hook: EvergreenHoldHook,
    event: IlsId,
    hold: EvergreenHold,
}

/// What the Evergreen templates post.
#[derive(Deserialize, ToSchema)]
#[serde(untagged)]
pub(crate) enum EvergreenEvent {
    /// A checkout, or a loan falling due.
    Loan(EvergreenLoanEvent),
    /// A return.
    Checkin(EvergreenCheckinEvent),
    /// A hold waiting for pickup.
    Hold(EvergreenHoldEvent),
}

/// The formats a patron sync takes.
#[derive(Deserialize, ToSchema, Clone, Copy)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum SyncFormat {
    Koha,
    Folio,
    Csv,
    KohaCsv,
}

/// The mod-pubsub event types Lectern subscribes to.
#[derive(Deserialize, ToSchema, Clone, Copy)]
#[allow(clippy::enum_variant_names)]
pub(crate) enum PubsubType {
    #[serde(rename = "ITEM_CHECKED_OUT")]
    ItemCheckedOut,
    #[serde(rename = "ITEM_CHECKED_IN")]
    ItemCheckedIn,
    #[serde(rename = "LOAN_DUE_DATE_CHANGED")]
    LoanDueDateChanged,
    #[serde(rename = "LOAN_CLOSED")]
    LoanClosed,
}

impl PubsubType {
    /// The name as mod-pubsub spells it.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            PubsubType::ItemCheckedOut => "ITEM_CHECKED_OUT",
            PubsubType::ItemCheckedIn => "ITEM_CHECKED_IN",
            PubsubType::LoanDueDateChanged => "LOAN_DUE_DATE_CHANGED",
            PubsubType::LoanClosed => "LOAN_CLOSED",
        }
    }
}
