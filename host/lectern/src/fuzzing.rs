//! Entry points for the fuzz targets in `host/fuzz` and for the corpus
//! smoke test: each takes arbitrary bytes, runs one reader or check of the
//! library on them, and panics only when an invariant is broken. An error
//! for bad input is the expected outcome, never a failure.
//!
//! Built only with the `fuzzing` feature; not part of the library's API.

use std::path::Path;

use arbitrary::{Arbitrary, Unstructured};

use crate::import::{Format, ImportOptions};
use crate::model::{Channel, Draft, Patron, Scored};
use crate::privacy::{Action, Field, Rules};
use crate::store::SqliteStore;
use crate::{Config, Limits, Manifest, outputs};

/// A `plugin.toml`: parsing it never panics, and a manifest that parses
/// has a semantic version, a plain id and limits within the host's maxima.
pub fn manifest(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(m) = Manifest::parse(Path::new("plugin.toml"), text) else {
        return;
    };
    assert!(
        semver::Version::parse(&m.version).is_ok(),
        "{:?}",
        m.version
    );
    assert!(
        m.id.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
    );
    let maxima = Limits::maxima();
    if let Ok(limits) = m.limits(&Limits::default(), &maxima) {
        assert!(limits.deadline <= maxima.deadline && limits.memory_bytes <= maxima.memory_bytes);
        assert!(limits.output_bytes <= maxima.output_bytes && limits.log_bytes <= maxima.log_bytes);
    }
}

/// A `lectern.toml`: parsing it never panics.
pub fn config(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = Config::parse(text, Path::new("."));
    }
}

/// One export file in `format`, imported leniently and then strictly into
/// fresh stores. The lenient import always completes, and every record it
/// does not write is reported with a reason; the strict one succeeds
/// exactly when nothing was skipped, and then writes the same.
pub fn import(format: Format, data: &[u8]) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let name = match format {
        Format::Folio | Format::Koha => "export.json",
        Format::KohaCsv | Format::Csv => "export.csv",
    };
    let path = dir.path().join(name);
    std::fs::write(&path, data).expect("the file is written");
    let paths = [path];
    let run = |strict| {
        let mut store = SqliteStore::open(Path::new(":memory:")).expect("an in-memory store");
        crate::import(
            &mut store,
            format,
            &paths,
            ImportOptions {
                strict,
                ..Default::default()
            },
            &crate::Pseudonyms::ephemeral(),
            &mut |_| {},
        )
    };
    let lenient = match run(false) {
        Ok(report) => report,
        Err(e) => panic!("a lenient import failed as a whole: {e}"),
    };
    for skip in &lenient.skipped {
        assert!(!skip.reason.is_empty(), "a skip without a reason: {skip:?}");
    }
    match run(true) {
        Ok(strict) => {
            assert!(
                lenient.skipped.is_empty(),
                "strict passed what lenient skipped"
            );
            assert_eq!(strict.written, lenient.written);
        }
        Err(_) => assert!(
            !lenient.skipped.is_empty(),
            "strict failed where nothing was skipped"
        ),
    }
}

/// A JSON-lines file of patrons: reading it never panics, and an error
/// names a line that exists.
pub fn jsonl(data: &[u8]) {
    let lines = data.split(|b| *b == b'\n').count();
    match crate::input::parse_jsonl::<Patron>(Path::new("patrons.jsonl"), data) {
        Ok(_) => {}
        Err(e) => assert!(e.line >= 1 && e.line <= lines, "line {} of {lines}", e.line),
    }
}

/// A scorer's answer: what passes has one score per patron in order, each
/// within 0 to 100 in a declared segment, and text that is safe to show.
pub fn scores(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let Ok((segments, sent, raw)) = <(Vec<String>, Vec<String>, Vec<RawScore>)>::arbitrary(&mut u)
    else {
        return;
    };
    let raw: Vec<Scored> = raw.into_iter().map(RawScore::into_scored).collect();
    let Ok(checked) = outputs::scores(&segments, &sent, raw) else {
        return;
    };
    assert_eq!(checked.len(), sent.len());
    for (s, sent) in checked.iter().zip(&sent) {
        assert_eq!(&s.patron, sent);
        assert!((0.0..=100.0).contains(&s.value));
        assert!(s.reasons.len() <= outputs::MAX_REASONS);
        for text in s.reasons.iter().chain([&s.segment]) {
            assert!(!text.chars().any(char::is_control), "{text:?}");
            assert!(text.len() <= outputs::MAX_REASON_BYTES + '…'.len_utf8());
        }
    }
}

/// A messenger's answer for one event: what passes has at most one
/// message per channel, each within its channel's cap, with a one-line
/// subject and a dedupe key.
pub fn messages(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let Ok(raw) = Vec::<RawDraft>::arbitrary(&mut u) else {
        return;
    };
    let drafts: Vec<Draft> = raw.into_iter().map(RawDraft::into_draft).collect();
    if outputs::messages("event-1", &drafts).is_err() {
        return;
    }
    assert!(drafts.len() <= 4);
    for d in &drafts {
        assert_eq!(drafts.iter().filter(|o| o.channel == d.channel).count(), 1);
        assert!(d.subject.len() + d.body.len() <= outputs::message_cap(d.channel));
        assert!(!d.dedupe_key.is_empty() && !d.subject.contains(['\n', '\r']));
    }
}

/// A privacy policy and a refinement of it: a policy names each field at
/// most once, and a refinement never lets out more than the policy.
pub fn policy(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let Ok((raw_policy, raw_refinement)) = <(Vec<(u8, u8)>, Vec<(u8, u8)>)>::arbitrary(&mut u)
    else {
        return;
    };
    let rule = |(f, a): (u8, u8)| {
        (
            Field::ALL[usize::from(f) % Field::ALL.len()],
            ACTIONS[usize::from(a) % ACTIONS.len()],
        )
    };
    let policy_rules: Vec<_> = raw_policy.into_iter().map(rule).collect();
    let refinement: Vec<_> = raw_refinement.into_iter().map(rule).collect();
    let Ok(policy) = outputs::policy(&policy_rules) else {
        return;
    };
    for f in Field::ALL {
        let rule = policy_rules.iter().find(|(g, _)| *g == f);
        assert_eq!(policy.get(f), rule.map_or(Action::Drop, |(_, a)| *a));
    }
    let Ok(refined) = outputs::refinement(&policy, &refinement) else {
        return;
    };
    for f in Field::ALL {
        let (before, after) = (policy.get(f), refined.get(f));
        assert!(
            after == Action::Drop || before == Action::Keep || after == before,
            "{f}: the policy says {before:?}, the refinement made it {after:?}"
        );
    }
    assert_eq!(refined.intersect(&Rules::ALL), refined);
}

const ACTIONS: [Action; 5] = [
    Action::Keep,
    Action::Drop,
    Action::Mask,
    Action::Pseudonymise,
    Action::Generalise,
];

#[derive(Arbitrary, Debug)]
struct RawScore {
    patron: String,
    value: f32,
    segment: String,
    reasons: Vec<String>,
}

impl RawScore {
    fn into_scored(self) -> Scored {
        Scored {
            patron: self.patron,
            value: self.value,
            segment: self.segment,
            reasons: self.reasons,
        }
    }
}

#[derive(Arbitrary, Debug)]
struct RawDraft {
    channel: u8,
    locale: String,
    subject: String,
    body: String,
    dedupe_key: String,
    send_after: Option<i64>,
}

impl RawDraft {
    fn into_draft(self) -> Draft {
        let channels = [
            Channel::Email,
            Channel::Sms,
            Channel::Webhook,
            Channel::Print,
        ];
        Draft {
            channel: channels[usize::from(self.channel) % channels.len()],
            locale: self.locale,
            subject: self.subject,
            body: self.body,
            dedupe_key: self.dedupe_key,
            send_after: self.send_after,
        }
    }
}
