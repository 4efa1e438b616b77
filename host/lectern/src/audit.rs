//! The audit log: every read of personal data, by whom, for what, which
//! fields and which patrons, in a chain that shows any edit or deletion.
//!
//! Each entry carries an HMAC-SHA256, under a key the store does not hold,
//! of the previous entry's MAC and its own content. Editing, inserting or
//! deleting an entry breaks the chain from there on, and without the key the
//! chain cannot be recomputed. An anchor, under the same key, covers the
//! last entry, so cutting entries from the end shows too. The log holds
//! references only: patron tokens, field names, purposes; never a personal
//! value. [`AuditChain`] is the one place the text, links and anchor are
//! computed; a backend stores and returns rows.

use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::privacy::{AccessContext, Actor, Field};

/// One read of personal data.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditEntry {
    /// When.
    pub at: DateTime<Utc>,
    /// Who, and why.
    pub context: AccessContext,
    /// The fields that left the host, in any form.
    pub fields: Vec<Field>,
    /// The patrons, by their pseudonym token, never by the library's id:
    /// an export finds a patron's entries by the tokens of every key the
    /// host has held, and erasing the patron leaves no id behind here.
    pub patrons: Vec<String>,
}

/// Where the pipeline records reads. Implementations must append in order
/// and make each entry durable with the data read, or fail the read.
pub trait AuditLog: Send + Sync {
    /// Appends one entry.
    fn append(&self, entry: &AuditEntry) -> anyhow::Result<()>;
}

/// What checking the chain found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditCheck {
    /// The number of the last entry. Entries that retention removed count,
    /// though they are no longer there to check.
    pub entries: u64,
    /// The first entry whose link does not hold, if any: edited, inserted,
    /// or following a deleted one.
    pub broken_at: Option<u64>,
    /// Entries 1 to this one were removed by retention (each run of it is
    /// an entry of its own); 0 if none were.
    pub removed_through: u64,
    /// How many entries the head kept outside the store says the log has
    /// had, when there is a head to compare with.
    pub head: Option<u64>,
    /// What the head outside the store shows, if the log falls short of it:
    /// cut, deleted, or put back to an older copy.
    pub cut: Option<String>,
}

impl AuditCheck {
    /// Whether every link holds and the log is as long as its head says.
    pub fn intact(&self) -> bool {
        self.broken_at.is_none() && self.cut.is_none()
    }
}

/// One row of the audit log as a backend stores it: text only, so that a
/// backend stores and returns rows and never computes a link itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRow {
    /// The entry's number, from 1; entries removed by retention keep theirs.
    pub seq: u64,
    /// When, RFC 3339 with microseconds, UTC.
    pub at: String,
    /// `plugin`, `staff` or `channel`.
    pub actor_kind: String,
    /// The plugin's id, the staff role or the channel.
    pub actor: String,
    /// The purpose.
    pub purpose: String,
    /// The fields, comma-separated.
    pub fields: String,
    /// The patrons, by token, comma-separated.
    pub patrons: String,
    /// The MAC over the previous link and this row's canonical text.
    pub link: String,
}

/// The anchor of the chain: its last entry, that entry's link, and where it
/// starts after retention removed older entries, under one MAC. It shows
/// entries cut from the end, which no link can.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditAnchor {
    /// The number of the last entry.
    pub entries: u64,
    /// The MAC over the fields below and the last link.
    pub mac: String,
    /// The number of the last entry retention removed; 0 if none.
    pub base_seq: u64,
    /// That entry's link; empty if none.
    pub base_link: String,
}

/// The chain's head as a backend reads it inside the transaction that
/// appends: the anchor, if any entry was ever written, and the last row's
/// number and link, if any row is left.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditHead {
    /// The stored anchor.
    pub anchor: Option<AuditAnchor>,
    /// The last row's number and link.
    pub last: Option<(u64, String)>,
}

/// The one place where the audit chain's text, links and anchor are
/// computed. Backends store what it hands them.
pub(crate) struct AuditChain<'k> {
    key: &'k [u8],
}

impl<'k> AuditChain<'k> {
    /// The chain under `key`, which the store never holds.
    pub(crate) fn new(key: &'k [u8]) -> AuditChain<'k> {
        AuditChain { key }
    }

    /// The row and the new anchor that append `entry` after `head`.
    pub(crate) fn next(&self, head: &AuditHead, entry: &AuditEntry) -> (AuditRow, AuditAnchor) {
        let (base_seq, base_link) = head
            .anchor
            .as_ref()
            .map_or((0, String::new()), |a| (a.base_seq, a.base_link.clone()));
        let (last, previous) = head
            .last
            .clone()
            .unwrap_or_else(|| (base_seq, base_link.clone()));
        let (kind, actor) = actor_parts(&entry.context.actor);
        let mut row = AuditRow {
            seq: last + 1,
            at: entry
                .at
                .to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
            actor_kind: kind.to_string(),
            actor: actor.to_string(),
            purpose: entry.context.purpose.as_str().to_string(),
            fields: entry
                .fields
                .iter()
                .map(|f| f.as_str())
                .collect::<Vec<_>>()
                .join(","),
            patrons: entry.patrons.join(","),
            link: String::new(),
        };
        row.link = link(self.key, &previous, &canonical(&row));
        let anchor = self.anchor(row.seq, &row.link, base_seq, base_link);
        (row, anchor)
    }

    /// The anchor over `last` and its `link`, starting after `base_seq`.
    pub(crate) fn anchor(
        &self,
        last: u64,
        link_of_last: &str,
        base_seq: u64,
        base_link: String,
    ) -> AuditAnchor {
        AuditAnchor {
            entries: last,
            mac: link(
                self.key,
                "anchor",
                &format!("{last}:{link_of_last}:{base_seq}:{base_link}"),
            ),
            base_seq,
            base_link,
        }
    }

    /// The anchor after retention removed every row up to `removed`
    /// (number and link), with `head` the last row left, if any.
    pub(crate) fn reanchor(
        &self,
        removed: (u64, String),
        head: Option<(u64, String)>,
    ) -> AuditAnchor {
        let (last, link_of_last) = head.unwrap_or_else(|| removed.clone());
        self.anchor(last, &link_of_last, removed.0, removed.1)
    }

    /// Checks `rows`, in order, against the stored `anchor`.
    pub(crate) fn verify(
        &self,
        anchor: Option<&AuditAnchor>,
        rows: &mut dyn Iterator<Item = anyhow::Result<AuditRow>>,
    ) -> anyhow::Result<AuditCheck> {
        let (base_seq, base_link) =
            anchor.map_or((0, String::new()), |a| (a.base_seq, a.base_link.clone()));
        let (mut previous, mut last) = (base_link.clone(), base_seq);
        for row in rows {
            let row = row?;
            last += 1;
            if row.seq != last || row.link != link(self.key, &previous, &canonical(&row)) {
                return Ok(AuditCheck {
                    entries: last,
                    broken_at: Some(last),
                    removed_through: base_seq,
                    head: None,
                    cut: None,
                });
            }
            previous = row.link;
        }
        let holds = match anchor {
            None => last == 0,
            Some(a) => *a == self.anchor(last, &previous, base_seq, base_link),
        };
        Ok(AuditCheck {
            entries: last,
            broken_at: (!holds).then_some(last + 1),
            removed_through: base_seq,
            head: None,
            cut: None,
        })
    }
}

/// The kind and name of an actor, as the log stores them.
fn actor_parts(actor: &Actor) -> (&'static str, &str) {
    match actor {
        Actor::Plugin(id) => ("plugin", id.as_str()),
        Actor::Staff(role) => ("staff", role.as_str()),
        Actor::Channel(name) => ("channel", name.as_str()),
        Actor::Task(name) => ("task", name.as_str()),
        Actor::Reader(page) => ("reader", page.as_str()),
    }
}

/// The canonical text the chain's MAC covers. Unit separators: none of
/// these strings can contain one.
fn canonical(row: &AuditRow) -> String {
    format!(
        "{}\u{1f}{}\u{1f}{}\u{1f}{}\u{1f}{}\u{1f}{}",
        row.at, row.actor_kind, row.actor, row.purpose, row.fields, row.patrons
    )
}

/// The link of one entry: the MAC over the previous link and the entry.
fn link(key: &[u8], previous: &str, canonical: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes a key of any length");
    mac.update(previous.as_bytes());
    mac.update(&[0x1e]);
    mac.update(canonical.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::privacy::{AccessContext, Field, Purpose};

    fn entry(n: u32) -> AuditEntry {
        AuditEntry {
            at: DateTime::from_timestamp(1_700_000_000 + i64::from(n), 0).unwrap(),
            context: AccessContext {
                purpose: Purpose::Scoring,
                actor: Actor::Plugin("engagement".into()),
            },
            fields: vec![Field::Category],
            patrons: vec![format!("tok{n}")],
        }
    }

    fn chain(key: &[u8], n: u32) -> (Vec<AuditRow>, AuditHead) {
        let chain = AuditChain::new(key);
        let mut head = AuditHead::default();
        let mut rows = Vec::new();
        for i in 0..n {
            let (row, anchor) = chain.next(&head, &entry(i));
            head = AuditHead {
                anchor: Some(anchor),
                last: Some((row.seq, row.link.clone())),
            };
            rows.push(row);
        }
        (rows, head)
    }

    fn check(key: &[u8], rows: &[AuditRow], head: &AuditHead) -> AuditCheck {
        AuditChain::new(key)
            .verify(head.anchor.as_ref(), &mut rows.iter().cloned().map(Ok))
            .unwrap()
    }

    #[test]
    fn an_intact_chain_verifies_and_every_cut_is_found() {
        let (rows, head) = chain(b"k", 4);
        assert_eq!(check(b"k", &rows, &head).broken_at, None);
        // An edit, a deletion in the middle, and a cut at the end.
        let mut edited = rows.clone();
        edited[1].patrons = "someone-else".into();
        assert_eq!(check(b"k", &edited, &head).broken_at, Some(2));
        let mut gap = rows.clone();
        gap.remove(2);
        assert_eq!(check(b"k", &gap, &head).broken_at, Some(3));
        assert_eq!(check(b"k", &rows[..3], &head).broken_at, Some(4));
        // Under another key nothing holds.
        assert_eq!(check(b"other", &rows, &head).broken_at, Some(1));
        // Rows without their anchor: the whole log was replaced or cut.
        let empty = AuditHead::default();
        assert_eq!(check(b"k", &rows, &empty).broken_at, Some(5));
    }

    #[test]
    fn after_retention_the_chain_goes_on_from_the_last_removed_entry() {
        let (rows, head) = chain(b"k", 5);
        let chain = AuditChain::new(b"k");
        let removed = (rows[1].seq, rows[1].link.clone());
        let anchor = chain.reanchor(removed, head.last.clone());
        let kept = &rows[2..];
        let after = AuditHead {
            anchor: Some(anchor),
            last: head.last.clone(),
        };
        assert_eq!(check(b"k", kept, &after).broken_at, None);
        // Removing every row keeps the count.
        let all = chain.reanchor((rows[4].seq, rows[4].link.clone()), None);
        let none = AuditHead {
            anchor: Some(all),
            last: None,
        };
        let c = check(b"k", &[], &none);
        assert_eq!((c.entries, c.broken_at), (5, None));
        let (next, _) = chain.next(&none, &entry(9));
        assert_eq!(next.seq, 6);
    }
}
