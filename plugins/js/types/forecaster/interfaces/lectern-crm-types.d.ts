declare module 'lectern:crm/types@0.2.0' {
  /**
   * A calendar date in the proleptic Gregorian calendar.
   * 
   * A date that the privacy policy generalised is rounded down to 1 January
   * of its year.
   */
  export interface Date {
    /**
     * The year, for example 2026.
     */
    year: number,
    /**
     * The month, 1 to 12.
     */
    month: number,
    /**
     * The day of the month, 1 to 31.
     */
    day: number,
  }
  /**
   * An instant, as whole seconds since 1970-01-01T00:00:00Z.
   */
  export type Timestamp = bigint;
  /**
   * A delivery channel for messages.
   * # Variants
   * 
   * ## `"email"`
   * 
   * Electronic mail.
   * ## `"sms"`
   * 
   * A text message to a mobile phone.
   * ## `"webhook"`
   * 
   * An HTTP POST to a gateway or to the ILS.
   * ## `"print"`
   * 
   * A printed notice, posted or handed over at the desk.
   */
  export type Channel = 'email' | 'sms' | 'webhook' | 'print';
  /**
   * One extended patron attribute, such as `department = chemistry` or
   * `research-project = NSFC-21973`.
   */
  export interface Attribute {
    /**
     * The attribute's code, as the ILS names it.
     */
    key: string,
    /**
     * The attribute's value.
     */
    value: string,
  }
  /**
   * What the patron agreed to.
   */
  export interface Consents {
    /**
     * The patron lets the library use what they borrowed (subjects and
     * titles) to serve them, for example for recommendations. Without it a
     * plugin sees counts only.
     */
    readingHistory: boolean,
    /**
     * The patron agreed to receive messages that are not about their own
     * loans and holds: new arrivals, surveys, invitations.
     */
    marketing: boolean,
  }
  /**
   * How often the patron borrowed in one subject.
   */
  export interface SubjectCount {
    /**
     * The subject or classification, for example `QD` or `chemistry`.
     */
    subject: string,
    /**
     * Loans in that subject over the last 365 days.
     */
    loans: number,
  }
  /**
   * A patron's segment in the latest run of one scorer, such as
   * `key-readers` / `key-reader` or `churn-risk` / `high-risk`. Segments are
   * how messaging gives different readers different service.
   */
  export interface SegmentMembership {
    /**
     * The scorer's plugin id.
     */
    scorer: string,
    /**
     * The segment it put the patron in.
     */
    segment: string,
  }
  /**
   * A summary of the patron's use of the library, as of the host's today.
   * 
   * Counts only: which titles a patron borrowed never appears here.
   */
  export interface Activity {
    /**
     * Loans in the last 30 days.
     */
    loans30d: number,
    /**
     * Loans in the last 90 days.
     */
    loans90d: number,
    /**
     * Loans in the last 365 days.
     */
    loans365d: number,
    /**
     * Renewals in the last 365 days.
     */
    renewals365d: number,
    /**
     * Holds placed in the last 365 days.
     */
    holds365d: number,
    /**
     * Items overdue right now.
     */
    overdueNow: number,
    /**
     * Days since the patron last borrowed, returned, renewed, placed a
     * hold, visited or used an e-resource; `none` if never.
     */
    daysSinceLastActivity?: number,
    /**
     * Visits in the last 365 days, where the library counts them.
     */
    visits365d?: number,
    /**
     * E-resource sessions in the last 365 days, where the library counts
     * them.
     */
    eresourceSessions365d?: number,
  }
  /**
   * A patron, as one plugin call may see them.
   */
  export interface Patron {
    /**
     * A pseudonymous token for the patron, stable for one library and one
     * host key. It is never the card number or the ILS id. Results refer to
     * the patron by this token.
     */
    id: string,
    /**
     * The library card number or barcode.
     */
    cardNumber?: string,
    /**
     * The patron's name, as they would be addressed.
     */
    name?: string,
    /**
     * The patron's email address.
     */
    email?: string,
    /**
     * The patron's mobile number, for SMS.
     */
    phone?: string,
    /**
     * The date of birth.
     */
    birthDate?: Date,
    /**
     * An age band such as `18-24` or `65+`.
     */
    ageBand?: string,
    /**
     * The patron group or category: `faculty`, `graduate`,
     * `undergraduate`, `staff`, `public`, or the library's own codes.
     */
    category?: string,
    /**
     * The code of the patron's home branch.
     */
    homeBranch?: string,
    /**
     * When the patron enrolled.
     */
    enrolledOn?: Date,
    /**
     * When the membership expires.
     */
    expiresOn?: Date,
    /**
     * Extended attributes, such as department or research project.
     */
    attributes?: Array<Attribute>,
    /**
     * What the patron agreed to.
     */
    consents?: Consents,
    /**
     * The preferred locale, as a BCP 47 tag such as `en` or `zh-CN`.
     */
    locale?: string,
    /**
     * Preferred channels, most preferred first.
     */
    channels?: Array<Channel>,
    /**
     * The activity summary.
     */
    activity?: Activity,
    /**
     * Loans per subject over the last 365 days. This is reading history:
     * the host passes it only for patrons who consented to that use.
     */
    interests?: Array<SubjectCount>,
    /**
     * The patron's segment in the latest run of each scorer.
     */
    segments?: Array<SegmentMembership>,
  }
  /**
   * The name of one patron field, as a manifest declares it and a privacy
   * policy rules on it. The TOML form is the kebab-case name, for example
   * `"home-branch"`. The token `id` is always present and has no entry.
   * # Variants
   * 
   * ## `"card-number"`
   * 
   * `card-number`
   * ## `"name"`
   * 
   * `name`
   * ## `"email"`
   * 
   * `email`
   * ## `"phone"`
   * 
   * `phone`
   * ## `"birth-date"`
   * 
   * `birth-date`
   * ## `"age-band"`
   * 
   * `age-band`
   * ## `"category"`
   * 
   * `category`
   * ## `"home-branch"`
   * 
   * `home-branch`
   * ## `"enrolled-on"`
   * 
   * `enrolled-on`
   * ## `"expires-on"`
   * 
   * `expires-on`
   * ## `"attributes"`
   * 
   * `attributes`
   * ## `"consents"`
   * 
   * `consents`
   * ## `"locale"`
   * 
   * `locale`
   * ## `"channels"`
   * 
   * `channels`
   * ## `"activity"`
   * 
   * `activity`
   * ## `"interests"`
   * 
   * `interests`
   * ## `"segments"`
   * 
   * `segments`
   * ## `"address"`
   * 
   * `address`: the postal address. Since 0.2.0. No plugin receives
   * it and no manifest declares it; the host prints it on letters,
   * where a policy lets it out.
   */
  export type PatronField = 'card-number' | 'name' | 'email' | 'phone' | 'birth-date' | 'age-band' | 'category' | 'home-branch' | 'enrolled-on' | 'expires-on' | 'attributes' | 'consents' | 'locale' | 'channels' | 'activity' | 'interests' | 'segments' | 'address';
  /**
   * One loan, as a notice about it needs it.
   */
  export interface Loan {
    /**
     * The item's title.
     */
    title: string,
    /**
     * The item's barcode.
     */
    barcode?: string,
    /**
     * When the item is due back.
     */
    dueOn: Date,
    /**
     * How often the loan was renewed.
     */
    renewals: number,
  }
  /**
   * One hold (a request), as a notice about it needs it.
   */
  export interface Hold {
    /**
     * The title on hold.
     */
    title: string,
    /**
     * The branch where the item waits.
     */
    pickupBranch: string,
    /**
     * The last day the item waits for the patron.
     */
    expiresOn?: Date,
  }
  /**
   * A new title in the catalogue.
   */
  export interface Arrival {
    /**
     * The title.
     */
    title: string,
    /**
     * The subject that matched the patron's interests.
     */
    subject: string,
  }
  /**
   * An overdue loan.
   */
  export interface Overdue {
    /**
     * The loan.
     */
    loan: Loan,
    /**
     * Whole days past the due date, at least 1.
     */
    daysOverdue: number,
  }
  /**
   * A survey the library invites the patron to.
   */
  export interface Survey {
    /**
     * The survey's title.
     */
    title: string,
    /**
     * Where the patron answers it.
     */
    url: string,
  }
  /**
   * What happened, with what a notice about it needs.
   */
  export type EventKind = EventKindCheckout | EventKindDueSoon | EventKindOverdue | EventKindHoldReady | EventKindHoldExpiring | EventKindCheckIn | EventKindMembershipExpiring | EventKindNewArrival | EventKindSurveyInvitation | EventKindWinBack;
  /**
   * The patron borrowed an item.
   */
  export interface EventKindCheckout {
    tag: 'checkout',
    val: Loan,
  }
  /**
   * A loan falls due soon.
   */
  export interface EventKindDueSoon {
    tag: 'due-soon',
    val: Loan,
  }
  /**
   * A loan is overdue.
   */
  export interface EventKindOverdue {
    tag: 'overdue',
    val: Overdue,
  }
  /**
   * A hold is ready for pickup.
   */
  export interface EventKindHoldReady {
    tag: 'hold-ready',
    val: Hold,
  }
  /**
   * A hold waiting for pickup is about to expire.
   */
  export interface EventKindHoldExpiring {
    tag: 'hold-expiring',
    val: Hold,
  }
  /**
   * The patron returned an item.
   */
  export interface EventKindCheckIn {
    tag: 'check-in',
    val: Loan,
  }
  /**
   * The membership expires soon.
   */
  export interface EventKindMembershipExpiring {
    tag: 'membership-expiring',
    val: Date,
  }
  /**
   * A new arrival matches the patron's interests. Marketing: the host
   * sends it only with the patron's consent.
   */
  export interface EventKindNewArrival {
    tag: 'new-arrival',
    val: Arrival,
  }
  /**
   * An invitation to a survey. Marketing.
   */
  export interface EventKindSurveyInvitation {
    tag: 'survey-invitation',
    val: Survey,
  }
  /**
   * The patron has lapsed (a scorer put them in a lapsed segment) and
   * is invited back. Marketing.
   */
  export interface EventKindWinBack {
    tag: 'win-back',
  }
  /**
   * A circulation or CRM event about one patron.
   */
  export interface Event {
    /**
     * The event's id, unique within the library. Dedupe keys build on it.
     */
    id: string,
    /**
     * When the event happened or was detected.
     */
    at: Timestamp,
    /**
     * What happened.
     */
    kind: EventKind,
  }
  /**
   * A message ready for delivery.
   */
  export interface Message {
    /**
     * The channel it goes out on.
     */
    channel: Channel,
    /**
     * The locale the text is written in, as a BCP 47 tag.
     */
    locale: string,
    /**
     * The subject line; empty for SMS.
     */
    subject: string,
    /**
     * The text.
     */
    body: string,
    /**
     * The plugin's key for the message, not empty: equal for two
     * messages of one event exactly when they are the same notice. The
     * host's outbox key hashes it with the event, the patron, the channel
     * and the day, and delivers one message per outbox key.
     */
    dedupeKey: string,
    /**
     * The earliest time to send it; `none` means as soon as possible.
     * Quiet hours may hold it later.
     */
    sendAfter?: Timestamp,
  }
  /**
   * Why the host is handing out patron data.
   * # Variants
   * 
   * ## `"scoring"`
   * 
   * Scoring plugins: engagement, key readers, churn risk.
   * ## `"messaging-transactional"`
   * 
   * Notices about the patron's own loans, holds and membership.
   * ## `"messaging-marketing"`
   * 
   * Messages the patron must have consented to.
   * ## `"staff-view"`
   * 
   * A staff member looking at a patron.
   * ## `"analytics"`
   * 
   * Aggregate statistics.
   * ## `"patron-export"`
   * 
   * The patron's own copy of their data.
   */
  export type Purpose = 'scoring' | 'messaging-transactional' | 'messaging-marketing' | 'staff-view' | 'analytics' | 'patron-export';
  /**
   * Who is asking.
   */
  export type Actor = ActorPlugin | ActorStaff;
  /**
   * A plugin, by its manifest id.
   */
  export interface ActorPlugin {
    tag: 'plugin',
    val: string,
  }
  /**
   * A staff member, by role, such as `circulation-desk`, `analyst` or
   * `administrator`.
   */
  export interface ActorStaff {
    tag: 'staff',
    val: string,
  }
  /**
   * The purpose and the actor of one access to patron data.
   */
  export interface AccessContext {
    /**
     * Why.
     */
    purpose: Purpose,
    /**
     * Who.
     */
    actor: Actor,
  }
  /**
   * What to do with one field.
   * # Variants
   * 
   * ## `"keep"`
   * 
   * Pass the value as it is.
   * ## `"drop"`
   * 
   * Withhold it: the field becomes `none`.
   * ## `"mask"`
   * 
   * Hide most of it: `j***@example.org`, `*******1234`, `W*** L***`.
   * Fields that are not text are dropped.
   * ## `"pseudonymise"`
   * 
   * Replace it with a keyed token that is stable under the host's key and
   * reveals nothing. Fields that are not text are dropped.
   * ## `"generalise"`
   * 
   * Coarsen it: dates to their year, an email to its domain, a locale to
   * its language, counts to bands, subjects to their main class,
   * attributes to their keys.
   */
  export type FieldAction = 'keep' | 'drop' | 'mask' | 'pseudonymise' | 'generalise';
  /**
   * The action for one field.
   */
  export interface FieldRule {
    /**
     * The field.
     */
    field: PatronField,
    /**
     * What to do with it.
     */
    action: FieldAction,
  }
  /**
   * A privacy policy for one access context.
   */
  export interface Policy {
    /**
     * One rule per field. A field without a rule is dropped.
     */
    rules: Array<FieldRule>,
    /**
     * Whether the host must also call `refine` for each record, because
     * some rule depends on the record (a minor, a withdrawn consent). When
     * false, the host applies `rules` to every record without calling the
     * plugin again.
     */
    refinePerRecord: boolean,
  }
  /**
   * An error a plugin reports on purpose. A trap (a panic, a timeout,
   * running out of memory) is not a plugin error: the host reports those
   * itself.
   */
  export type PluginError = PluginErrorInvalidInput | PluginErrorBadConfig | PluginErrorOther;
  /**
   * The input was not what the plugin can work with.
   */
  export interface PluginErrorInvalidInput {
    tag: 'invalid-input',
    val: string,
  }
  /**
   * The plugin's configuration is wrong; the text says which key.
   */
  export interface PluginErrorBadConfig {
    tag: 'bad-config',
    val: string,
  }
  /**
   * Anything else.
   */
  export interface PluginErrorOther {
    tag: 'other',
    val: string,
  }
}
