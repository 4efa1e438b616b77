//! Importers: records from an ILS's exports into a [`Store`], with a report
//! of what was imported, updated and skipped, and why.
//!
//! Every importer
//! - streams: records are read one at a time and written into an open
//!   transaction, so memory stays flat whatever the size of the files;
//! - reads the files twice, patrons first and then loans, holds and use, so
//!   the order of the files does not matter;
//! - is idempotent: records are keyed by the ILS's ids and updated in place;
//! - keeps one identity per patron: the card number is a second unique key,
//!   so a format keyed by card (Koha's patron CSV) updates the patron an
//!   id-keyed format (Koha's JSON) wrote, and a card claimed by two ids is
//!   reported;
//! - does not bring back a patron who was erased, unless told to
//!   ([`ImportOptions::readmit`]);
//! - never drops a record silently: a bad record is skipped and reported with
//!   its file, record and field, or with `strict` the whole import stops and
//!   nothing is written.

mod csv;
mod folio;
pub(crate) use folio::{loan as folio_loan, request as folio_request};
mod koha;

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use anyhow::Context as _;
use serde_json::Value;

use crate::config::Clock;
use crate::privacy::{Field, Pseudonyms};
use crate::store::{
    HoldRecord, ImportTx, LoanRecord, PatronRecord, Put, Store, UseRecord, Written,
};

/// The export formats Lectern reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// FOLIO JSON: users, patron groups, loans and requests, one object per
    /// file or a collection such as `{"users": [...]}`.
    Folio,
    /// Koha's REST API JSON: `/api/v1/patrons`, `/api/v1/checkouts` (with
    /// `checked_in=true` for history) and `/api/v1/holds`, with
    /// `/api/v1/items` (embedding `biblio`) or `/api/v1/biblios` for the
    /// titles and barcodes of what is borrowed and held.
    Koha,
    /// Koha's patron-import CSV.
    KohaCsv,
    /// Lectern's own CSV, for libraries on other systems. One file per kind
    /// of record; the header says which:
    ///
    /// | file | required columns | optional columns |
    /// |---|---|---|
    /// | patrons | `id` | `card_number`, `name`, `email`, `phone`, `address` (lines, `;` between), `birth_date`, `age_band`, `category`, `home_branch`, `enrolled_on`, `expires_on`, `locale`, `channels` (`email;sms`), `consent_reading_history`, `consent_marketing` (`true`/`false`), `active` (default `true`), `attributes` (`key=value;key=value`) |
    /// | loans | `id`, `patron_id`, `loaned_on` | `item_id`, `title`, `subject`, `due_on`, `returned_on`, `renewals` |
    /// | holds | `id`, `patron_id`, `placed_on` | `title`, `status`, `pickup_branch`, `expires_on` |
    /// | use | `patron_id`, `day`, `kind` (`visit` or `eresource`), `count` | |
    ///
    /// Dates are `YYYY-MM-DD`; a date-time is read as its day.
    Csv,
}

impl Format {
    /// The name on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Folio => "folio",
            Format::Koha => "koha",
            Format::KohaCsv => "koha-csv",
            Format::Csv => "csv",
        }
    }
}

impl FromStr for Format {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        [Format::Folio, Format::Koha, Format::KohaCsv, Format::Csv]
            .into_iter()
            .find(|f| f.as_str() == s)
            .ok_or_else(|| {
                format!("unknown format `{s}`; the formats are: folio, koha, koha-csv, csv")
            })
    }
}

/// One record an importer did not write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skip {
    /// The file.
    pub file: PathBuf,
    /// The record's position in the file, from 1 (a CSV file's header is
    /// not a record); 0 when the whole file was skipped.
    pub record: usize,
    /// The line the record starts on, in a CSV file.
    pub line: Option<u64>,
    /// The field at fault, when one is.
    pub field: Option<String>,
    /// Why, and what to do.
    pub reason: String,
}

impl fmt::Display for Skip {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if self.record > 0 {
            write!(f, ": record {}", self.record)?;
        }
        if let Some(line) = self.line {
            write!(f, " (line {line})")?;
        }
        if let Some(field) = &self.field {
            write!(f, ": field `{field}`")?;
        }
        write!(f, ": {}", self.reason)
    }
}

impl std::error::Error for Skip {}

/// What an import did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImportReport {
    /// New and updated records.
    pub written: Written,
    /// Records skipped, each with its reason.
    pub skipped: Vec<Skip>,
    /// Dates that cannot be (such as Koha's `0000-00-00`), read as absent;
    /// their records were kept.
    pub impossible_dates: usize,
    /// Records of patrons who were erased, withheld: the patron and their
    /// loans, holds and use.
    pub withheld_erased: usize,
    /// Erased patrons imported again, as [`ImportOptions::readmit`] asked.
    pub readmitted: usize,
}

/// Options every importer takes.
#[derive(Debug, Clone, Copy, Default)]
pub struct ImportOptions {
    /// Stop at the first bad record and write nothing.
    pub strict: bool,
    /// The files' character encoding.
    pub encoding: Encoding,
    /// The library's clock: a date-time with a zone or an offset, such as
    /// FOLIO's `2020-11-14T04:59:59Z`, counts on the local day it falls on
    /// here (13 November at UTC-5). One without a zone is already local.
    pub clock: Clock,
    /// Import patrons who were erased, lifting their tombstones. Without it
    /// their records are withheld and counted.
    pub readmit: bool,
}

/// A file's character encoding.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Encoding {
    /// UTF-8, with or without a byte-order mark.
    #[default]
    Utf8,
    /// ISO-8859-1, as older ILS exports write: every byte is one character.
    Latin1,
}

impl FromStr for Encoding {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "utf-8" | "utf8" => Ok(Encoding::Utf8),
            "latin1" | "latin-1" | "iso-8859-1" => Ok(Encoding::Latin1),
            _ => Err(format!(
                "unknown encoding `{s}`; the encodings are: utf-8, latin1"
            )),
        }
    }
}

/// The most bytes one field of a record may hold; a longer one skips the
/// record, since no name, title or address is that long.
pub const MAX_FIELD_BYTES: usize = 4096;

/// Imports `paths` in `format` into `store`, in one transaction. `keys`
/// are the library's pseudonym keys, which erased patrons' tombstones are
/// under. `progress` is called with the number of records read so far, now
/// and then.
pub fn import(
    store: &mut dyn Store,
    format: Format,
    paths: &[PathBuf],
    options: ImportOptions,
    keys: &Pseudonyms,
    progress: &mut dyn FnMut(u64),
) -> crate::Result<ImportReport> {
    import_into(store, format, paths, options, keys, progress).map_err(crate::Error::store)
}

fn import_into(
    store: &mut dyn Store,
    format: Format,
    paths: &[PathBuf],
    options: ImportOptions,
    keys: &Pseudonyms,
    progress: &mut dyn FnMut(u64),
) -> anyhow::Result<ImportReport> {
    let groups = if format == Format::Folio {
        folio::groups(paths)
    } else {
        Default::default()
    };
    let catalogue = if format == Format::Koha {
        koha::catalogue(paths)
    } else {
        Default::default()
    };
    IMPOSSIBLE_DATES.with(|n| n.set(0));
    ENCODING.with(|e| e.set(options.encoding));
    CLOCK.with(|c| c.set(options.clock));
    let tx = store.import(format.as_str())?;
    let mut sink = Sink {
        tx,
        written: Written::default(),
        skipped: Vec::new(),
        keys,
        by_card: format == Format::KohaCsv,
        withheld_erased: 0,
        readmitted: 0,
        options,
        pass: Pass::Patrons,
        read: 0,
        progress,
    };
    for pass in [Pass::Patrons, Pass::Activity] {
        sink.pass = pass;
        for path in paths {
            let result = match format {
                Format::Folio => folio::read(path, &groups, &mut sink),
                Format::Koha => koha::read_json(path, &catalogue, &mut sink),
                Format::KohaCsv => koha::read_csv(path, &mut sink),
                Format::Csv => csv::read(path, &mut sink),
            };
            match result {
                Ok(()) => {}
                Err(Stop::Strict(e)) => return Err(e),
                Err(Stop::File(reason)) if pass == Pass::Patrons => {
                    sink.skip(Origin::new(path, 0).skip(None, reason))
                        .map_err(Stop::into_error)?;
                }
                Err(Stop::File(_)) => {}
            }
        }
    }
    (sink.progress)(sink.read);
    let Sink {
        tx,
        written,
        skipped,
        withheld_erased,
        readmitted,
        ..
    } = sink;
    tx.commit(written, skipped.len())?;
    // Each file is read twice; each impossible date was counted twice.
    let impossible_dates = IMPOSSIBLE_DATES.with(|n| n.get()) / 2;
    Ok(ImportReport {
        written,
        skipped,
        impossible_dates,
        withheld_erased,
        readmitted,
    })
}

thread_local! {
    /// Impossible dates read as absent by this thread's import.
    static IMPOSSIBLE_DATES: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
    /// The encoding of the files this thread's import reads.
    static ENCODING: std::cell::Cell<Encoding> = const { std::cell::Cell::new(Encoding::Utf8) };
    /// The library's clock, for this thread's import.
    static CLOCK: std::cell::Cell<Clock> = std::cell::Cell::new(Clock::default());
}

/// Why reading stopped early.
pub(crate) enum Stop {
    /// A strict import met a bad record, or the store failed: abort.
    Strict(anyhow::Error),
    /// The file as a whole cannot be read: skip it and go on.
    File(String),
}

impl Stop {
    fn into_error(self) -> anyhow::Error {
        match self {
            Stop::Strict(e) => e,
            Stop::File(m) => anyhow::anyhow!(m),
        }
    }
}

impl From<anyhow::Error> for Stop {
    fn from(e: anyhow::Error) -> Self {
        Stop::Strict(e)
    }
}

/// Which records a pass writes.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Pass {
    Patrons,
    Activity,
}

/// Where a record came from.
#[derive(Clone, Debug)]
pub(crate) struct Origin {
    file: PathBuf,
    record: usize,
    line: Option<u64>,
}

impl Origin {
    pub(crate) fn new(file: &Path, record: usize) -> Origin {
        Origin {
            file: file.to_path_buf(),
            record,
            line: None,
        }
    }

    fn skip(&self, field: Option<&str>, reason: impl Into<String>) -> Skip {
        Skip {
            file: self.file.clone(),
            record: self.record,
            line: self.line,
            field: field.map(str::to_string),
            reason: reason.into(),
        }
    }
}

/// One record as a format reads it.
// One record exists at a time while an import streams, so its size is moot.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Record {
    Patron(PatronRecord),
    /// A loan, and the name of the field that names its patron.
    Loan(LoanRecord, &'static str),
    /// A hold, and the name of the field that names its patron.
    Hold(HoldRecord, &'static str),
    /// A day of use, and the name of the field that names its patron.
    Use(UseRecord, &'static str),
}

/// A field that could not be read, and why. An empty field name means the
/// record as a whole, such as a malformed CSV row.
pub(crate) type BadField = (String, String);

/// What a format hands over per record: whether it is a patron (so the
/// right pass handles it), and the record or what is wrong with it.
pub(crate) struct Parsed {
    pub(crate) patron: bool,
    pub(crate) record: Result<Record, BadField>,
}

impl Parsed {
    /// A patron record.
    pub(crate) fn patron(record: Result<PatronRecord, BadField>) -> Parsed {
        Parsed {
            patron: true,
            record: record.map(Record::Patron),
        }
    }

    /// A loan, hold or use record.
    pub(crate) fn activity(record: Result<Record, BadField>) -> Parsed {
        Parsed {
            patron: false,
            record,
        }
    }
}

/// Receives records as a format reads them, and writes them.
pub(crate) struct Sink<'a> {
    tx: Box<dyn ImportTx + 'a>,
    written: Written,
    skipped: Vec<Skip>,
    keys: &'a Pseudonyms,
    /// The format keys patrons by card number: its ids are card numbers.
    by_card: bool,
    withheld_erased: usize,
    readmitted: usize,
    options: ImportOptions,
    pass: Pass,
    read: u64,
    progress: &'a mut dyn FnMut(u64),
}

impl Sink<'_> {
    pub(crate) fn accept(&mut self, origin: Origin, parsed: Parsed) -> Result<(), Stop> {
        let mine = parsed.patron == (self.pass == Pass::Patrons);
        if !mine {
            return Ok(());
        }
        self.read += 1;
        if self.read.is_multiple_of(10_000) {
            (self.progress)(self.read);
        }
        let mut record = match parsed.record.and_then(|r| within_caps(&r).map(|()| r)) {
            Ok(r) => r,
            Err((field, reason)) => {
                let field = (!field.is_empty()).then_some(field.as_str());
                return self.skip(origin.skip(field, reason));
            }
        };
        if let Record::Patron(p) = &mut record {
            if let Err(skip) = self.one_identity(&origin, p)? {
                return self.skip(skip);
            }
            // Most stores never erased anyone: then no token is made.
            if self.tx.has_tombstones() {
                let mut tokens = vec![self.keys.patron_token(&p.patron.id)];
                if let Some(card) = &p.patron.card_number {
                    tokens.push(self.keys.value_token(Field::CardNumber, card));
                }
                let mut erased = false;
                for token in &tokens {
                    erased |= self.tx.is_erased(token)?;
                }
                if erased {
                    if !self.options.readmit {
                        self.withheld_erased += 1;
                        return Ok(());
                    }
                    for token in &tokens {
                        self.tx.readmit(token)?;
                    }
                    self.readmitted += 1;
                }
            }
        }
        let patron = match &record {
            Record::Patron(_) => None,
            Record::Loan(l, field) => Some((&l.patron, *field)),
            Record::Hold(h, field) => Some((&h.patron, *field)),
            Record::Use(u, field) => Some((&u.patron, *field)),
        };
        if let Some((patron, field)) = patron
            && !self.tx.has_patron(patron)?
        {
            if self.tx.has_tombstones() && self.tx.is_erased(&self.keys.patron_token(patron))? {
                self.withheld_erased += 1;
                return Ok(());
            }
            let reason = format!("no patron with id `{patron}`; import the patron first");
            return self.skip(origin.skip(Some(field), reason));
        }
        let (put, id) = match &record {
            Record::Patron(p) => (self.tx.put_patron(p)?, &p.patron.id),
            Record::Loan(l, _) => (self.tx.put_loan(l)?, &l.id),
            Record::Hold(h, _) => (self.tx.put_hold(h)?, &h.id),
            Record::Use(u, _) => (self.tx.put_use(u)?, &u.patron),
        };
        if put == Put::Duplicate {
            let what =
                format!("duplicate: this import already has a record with id `{id}`; keep one");
            return self.skip(origin.skip(Some("id"), what));
        }
        self.written.count(put);
        Ok(())
    }

    /// Makes the card number a second unique key. A format keyed by card
    /// takes the id of the patron who holds the card; a patron an import
    /// keyed by card wrote (whose id is the card) takes the ILS's id when
    /// one arrives. A card another id holds is a conflict, reported.
    fn one_identity(
        &mut self,
        origin: &Origin,
        p: &mut PatronRecord,
    ) -> anyhow::Result<Result<(), Skip>> {
        let Some(card) = p.patron.card_number.as_deref() else {
            return Ok(Ok(()));
        };
        let Some(holder) = self.tx.card_holder(card)? else {
            return Ok(Ok(()));
        };
        if holder == p.patron.id {
            return Ok(Ok(()));
        }
        if self.by_card {
            p.patron.id = holder;
            return Ok(Ok(()));
        }
        if holder == card && !self.tx.has_patron(&p.patron.id)? {
            self.tx.rekey_patron(&holder, &p.patron.id)?;
            return Ok(Ok(()));
        }
        Ok(Err(origin.skip(
            Some("card_number"),
            format!(
                "card number `{}` already belongs to patron `{}`, and one card is one patron; \
                 correct the card number in the ILS, or erase the stale patron, then import again",
                excerpt(card),
                excerpt(&holder)
            ),
        )))
    }

    fn skip(&mut self, skip: Skip) -> Result<(), Stop> {
        if self.options.strict {
            let reason = format!("{}; nothing was written (--strict)", skip.reason);
            return Err(Stop::Strict(anyhow::Error::new(Skip { reason, ..skip })));
        }
        self.skipped.push(skip);
        Ok(())
    }
}

/// Checks that no text field of `record` is over [`MAX_FIELD_BYTES`].
fn within_caps(record: &Record) -> Result<(), BadField> {
    let fields: Vec<(&str, Option<&str>)> = match record {
        Record::Patron(r) => {
            let p = &r.patron;
            let mut fields = vec![
                ("id", Some(p.id.as_str())),
                ("card_number", p.card_number.as_deref()),
                ("name", p.name.as_deref()),
                ("email", p.email.as_deref()),
                ("phone", p.phone.as_deref()),
                ("category", p.category.as_deref()),
                ("home_branch", p.home_branch.as_deref()),
                ("locale", p.locale.as_deref()),
            ];
            for line in p.address.iter().flatten() {
                fields.push(("address", Some(line.as_str())));
            }
            for (k, v) in p.attributes.iter().flatten() {
                fields.push(("attributes", Some(k.as_str())));
                fields.push(("attributes", Some(v.as_str())));
            }
            fields
        }
        Record::Loan(l, _) => vec![
            ("id", Some(l.id.as_str())),
            ("item", l.item.as_deref()),
            ("title", l.title.as_deref()),
            ("subject", l.subject.as_deref()),
        ],
        Record::Hold(h, _) => vec![
            ("id", Some(h.id.as_str())),
            ("title", h.title.as_deref()),
            ("status", h.status.as_deref()),
            ("pickup_branch", h.pickup_branch.as_deref()),
        ],
        Record::Use(u, _) => vec![("patron_id", Some(u.patron.as_str()))],
    };
    match fields
        .into_iter()
        .find_map(|(field, v)| v.filter(|v| v.len() > MAX_FIELD_BYTES).map(|v| (field, v)))
    {
        Some((field, v)) => Err((
            field.to_string(),
            format!(
                "{} bytes, over the cap of {MAX_FIELD_BYTES} for one field; starts `{}`",
                v.len(),
                excerpt(v)
            ),
        )),
        None => Ok(()),
    }
}

/// At most the first 40 characters of `s`, for an error that shows what it
/// is about without repeating the input.
pub(crate) fn excerpt(s: &str) -> String {
    let mut out: String = s
        .chars()
        .take(40)
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if s.chars().nth(40).is_some() {
        out.push('…');
    }
    out
}

/// Opens `path` for reading in `encoding`, as UTF-8 without a byte-order
/// mark.
pub(crate) fn open(path: &Path, encoding: Encoding) -> Result<Box<dyn std::io::Read>, Stop> {
    use std::io::BufRead as _;
    let file = std::fs::File::open(path)
        .with_context(|| format!("failed to open {}", path.display()))
        .map_err(Stop::Strict)?;
    let mut reader = std::io::BufReader::new(file);
    if encoding == Encoding::Utf8 {
        let bom = reader
            .fill_buf()
            .map_err(|e| Stop::File(format!("cannot read it: {e}")))?
            .starts_with(b"\xEF\xBB\xBF");
        if bom {
            reader.consume(3);
        }
        return Ok(Box::new(reader));
    }
    Ok(Box::new(Latin1(reader, Vec::new())))
}

/// ISO-8859-1 read as UTF-8: each byte is the code point of its value.
struct Latin1<R>(R, Vec<u8>);

impl<R: std::io::BufRead> std::io::Read for Latin1<R> {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        if self.1.is_empty() {
            let input = self.0.fill_buf()?;
            if input.is_empty() {
                return Ok(0);
            }
            let n = input.len().min(4096);
            self.1 = input[..n]
                .iter()
                .flat_map(|&b| {
                    let mut buf = [0u8; 2];
                    char::from(b).encode_utf8(&mut buf).as_bytes().to_vec()
                })
                .collect();
            self.0.consume(n);
            self.1.reverse();
        }
        let mut written = 0;
        while written < out.len() {
            let Some(b) = self.1.pop() else { break };
            out[written] = b;
            written += 1;
        }
        Ok(written)
    }
}

/// What to say about a file that is not valid UTF-8.
pub(crate) const NOT_UTF8: &str = "the file is not UTF-8; if it is Latin-1 (ISO-8859-1), as \
    older ILS exports are, import it with --encoding latin1";

/// Calls `f` for each record of a JSON file: the elements of a top-level
/// array, the elements of the first of `collections` found in a top-level
/// object, or the object itself. Arrays are streamed, element by element.
pub(crate) fn json_records(
    path: &Path,
    collections: &[&str],
    f: &mut dyn FnMut(usize, Value) -> Result<(), Stop>,
) -> Result<(), Stop> {
    use serde::de::{DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};

    struct Each<'f> {
        f: &'f mut dyn FnMut(usize, Value) -> Result<(), Stop>,
        stop: Option<Stop>,
        read: usize,
    }

    impl<'de> Visitor<'de> for &mut Each<'_> {
        type Value = ();
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("an array of records")
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
            let mut i = 0;
            while let Some(v) = seq.next_element::<Value>()? {
                i += 1;
                self.read = i;
                if let Err(stop) = (self.f)(i, v) {
                    self.stop = Some(stop);
                    return Err(serde::de::Error::custom("stopped"));
                }
            }
            Ok(())
        }
    }

    impl<'de> DeserializeSeed<'de> for &mut Each<'_> {
        type Value = ();
        fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
            d.deserialize_seq(self)
        }
    }

    struct Top<'f, 'c> {
        each: Each<'f>,
        collections: &'c [&'c str],
        single: Option<serde_json::Map<String, Value>>,
    }

    impl<'de> Visitor<'de> for &mut Top<'_, '_> {
        type Value = ();
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a record, an array of records, or a collection of them")
        }
        fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<(), A::Error> {
            (&mut self.each).visit_seq(seq)
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
            let mut single = serde_json::Map::new();
            let mut streamed = false;
            while let Some(key) = map.next_key::<String>()? {
                if !streamed && self.collections.contains(&key.as_str()) {
                    map.next_value_seed(&mut self.each)?;
                    streamed = true;
                } else {
                    single.insert(key, map.next_value()?);
                }
            }
            if !streamed {
                self.single = Some(single);
            }
            Ok(())
        }
    }

    let reader = open(path, ENCODING.with(|e| e.get()))?;
    let mut de = serde_json::Deserializer::from_reader(reader);
    let mut top = Top {
        each: Each {
            f,
            stop: None,
            read: 0,
        },
        collections,
        single: None,
    };
    let parsed = de.deserialize_any(&mut top).and_then(|()| de.end());
    if let Some(stop) = top.each.stop.take() {
        return Err(stop);
    }
    if let Err(e) = parsed {
        let hint = if e.to_string().contains("unicode") || e.to_string().contains("UTF-8") {
            format!("; {NOT_UTF8}")
        } else {
            String::new()
        };
        let read = top.each.read;
        return Err(Stop::File(if read == 0 {
            format!("not valid JSON: {e}{hint}; nothing in it was read")
        } else {
            format!(
                "the file is damaged after record {read}: not valid JSON: {e}{hint}; the \
                 {read} records before it were read, and nothing after it"
            )
        }));
    }
    match top.single.take() {
        Some(obj) => (top.each.f)(1, Value::Object(obj)),
        None => Ok(()),
    }
}

/// A CSV row, by header name, or why it could not be read.
pub(crate) type Row<'r> = Result<&'r dyn Fn(&str) -> Option<String>, String>;

/// Calls `f` with each row of a CSV file and where it is. A file whose
/// header lacks a field in `required` is skipped as a whole; a malformed row
/// reaches `f` as an error, and reading goes on.
pub(crate) fn csv_records(
    path: &Path,
    required: &[&str],
    f: &mut dyn FnMut(Origin, Row<'_>) -> Result<(), Stop>,
) -> Result<(), Stop> {
    // Records end at LF alone, so that a line number is the file's own in
    // CRLF files too (the CR is trimmed with the rest of the whitespace).
    let mut reader = ::csv::ReaderBuilder::new()
        .terminator(::csv::Terminator::Any(b'\n'))
        .from_reader(open(path, ENCODING.with(|e| e.get()))?);
    let headers: Vec<String> = reader
        .headers()
        .map_err(|e| Stop::File(format!("cannot read the header: {e}")))?
        .iter()
        .map(|h| h.trim().to_string())
        .collect();
    if let Some(missing) = required.iter().find(|r| !headers.iter().any(|h| h == *r)) {
        return Err(Stop::File(format!(
            "the header has no `{missing}` column; it needs: {}",
            required.join(", ")
        )));
    }
    let mut row = ::csv::StringRecord::new();
    let mut i = 0;
    let origin = |record: usize, pos: Option<&::csv::Position>| Origin {
        file: path.to_path_buf(),
        record,
        line: pos.map(::csv::Position::line),
    };
    loop {
        i += 1;
        match reader.read_record(&mut row) {
            Ok(false) => return Ok(()),
            Ok(true) => {
                let get = |name: &str| {
                    let at = headers.iter().position(|h| h == name)?;
                    row.get(at)
                        .map(str::trim)
                        .filter(|v| !v.is_empty())
                        .map(clean)
                };
                f(origin(i, row.position()), Ok(&get))?;
            }
            Err(e) if e.is_io_error() => {
                return Err(Stop::Strict(anyhow::anyhow!(
                    "failed to read {}: {e}",
                    path.display()
                )));
            }
            Err(e) => {
                let why = match e.kind() {
                    ::csv::ErrorKind::UnequalLengths {
                        expected_len, len, ..
                    } => format!("{len} fields where the header has {expected_len}"),
                    // The column by its header's name; by its number, from
                    // 1, past the header's last.
                    ::csv::ErrorKind::Utf8 { err, .. } => format!(
                        "column {}: {NOT_UTF8}",
                        headers
                            .get(err.field())
                            .map_or_else(|| (err.field() + 1).to_string(), |h| format!("`{h}`"))
                    ),
                    _ => e.to_string(),
                };
                let at = origin(i, e.position());
                f(at, Err(format!("not a valid CSV row: {why}")))?
            }
        }
    }
}

/// A date, or a date-time, as the library's local day it falls on: a
/// date-time with a zone or an offset is moved to the library's clock
/// first; one without is taken as already local.
/// Runs `f` with `clock` as the clock that dates read by [`day`] count
/// on, as an import does for its whole run.
pub(crate) fn with_clock<T>(clock: Clock, f: impl FnOnce() -> T) -> T {
    let before = CLOCK.with(|c| c.replace(clock));
    let out = f();
    CLOCK.with(|c| c.set(before));
    out
}

/// The library's day at `at`, on the clock [`with_clock`] set.
pub(crate) fn local_date(at: chrono::DateTime<chrono::Utc>) -> chrono::NaiveDate {
    CLOCK.with(|c| c.get()).local(at).date()
}

pub(crate) fn day(
    value: Option<String>,
    field: &str,
) -> Result<Option<chrono::NaiveDate>, BadField> {
    let Some(s) = value else { return Ok(None) };
    // Koha and MySQL write an unknown date as zeros: absent, not wrong.
    if s.starts_with("0000-00-00") {
        IMPOSSIBLE_DATES.with(|n| n.set(n.get() + 1));
        return Ok(None);
    }
    if let Some(at) = zoned(&s) {
        return Ok(Some(CLOCK.with(|c| c.get()).local(at).date()));
    }
    let head = s.get(..10).unwrap_or(&s);
    chrono::NaiveDate::parse_from_str(head, "%Y-%m-%d")
        .map(Some)
        .map_err(|_| {
            (
                field.to_string(),
                format!("`{}` is not a real date (YYYY-MM-DD)", excerpt(&s)),
            )
        })
}

/// A date-time that names its zone or offset (`Z`, `+08:00`, `-0500`),
/// as the moment it is.
fn zoned(s: &str) -> Option<chrono::DateTime<chrono::Utc>> {
    if s.len() <= 10 {
        return None;
    }
    let at = chrono::DateTime::parse_from_rfc3339(s)
        .or_else(|_| chrono::DateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f%z"))
        .or_else(|_| chrono::DateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S%.f%z"))
        .or_else(|_| chrono::DateTime::parse_from_rfc3339(&s.replacen(' ', "T", 1)))
        .ok()?;
    Some(at.with_timezone(&chrono::Utc))
}

/// A postal address as envelope lines, from the parts an ILS keeps: the
/// street line (number, street, type), a second line, then town, region and
/// postal code on one line, then the country. Blank parts are left out;
/// `None` when every part is blank.
pub(crate) fn postal_address(
    street: [Option<String>; 3],
    second: Option<String>,
    town: [Option<String>; 3],
    country: Option<String>,
) -> Option<Vec<String>> {
    let line = |parts: [Option<String>; 3]| {
        let words: Vec<String> = parts.into_iter().flatten().collect();
        (!words.is_empty()).then(|| words.join(" "))
    };
    let lines: Vec<String> = [line(street), second, line(town), country]
        .into_iter()
        .flatten()
        .collect();
    (!lines.is_empty()).then_some(lines)
}

/// A required date.
pub(crate) fn required_day(
    value: Option<String>,
    field: &str,
) -> Result<chrono::NaiveDate, BadField> {
    day(value, field)?.ok_or_else(|| (field.to_string(), "missing".to_string()))
}

/// A required text field.
pub(crate) fn required(value: Option<String>, field: &str) -> Result<String, BadField> {
    value.ok_or_else(|| (field.to_string(), "missing".to_string()))
}

/// Text as stored: every control character (a line break that would
/// become a header of a letter, an escape code) made a space.
pub(crate) fn clean(s: &str) -> String {
    if !s.chars().any(char::is_control) {
        return s.to_string();
    }
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// A JSON value's text at `path`, with numbers as text; blank is `None`.
pub(crate) fn text(v: &Value, path: &[&str]) -> Option<String> {
    let mut cur = v;
    for p in path {
        cur = cur.get(p)?;
    }
    match cur {
        Value::String(s) => Some(clean(s.trim())).filter(|s| !s.is_empty()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}
