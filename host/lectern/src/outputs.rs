//! Checks on what a plugin hands back, before the host believes any of it.
//!
//! A plugin may lie: return scores for patrons it was not given, segments
//! it never declared, a thousand messages for one event, a policy that
//! names a field twice. Each check here is a pure function of the plugin's
//! output and what the host asked, so each is fuzzed on its own
//! (`cargo xtask fuzz`), and the error text is what the pipeline reports
//! against the plugin's name.

use std::collections::HashSet;

use crate::model::{Channel, Draft, Scored};
use crate::privacy::{Action, Field, Rules};
use crate::text::neutralise;

/// The most reasons one score may give.
pub const MAX_REASONS: usize = 32;
/// The most bytes of one reason shown; longer ones are cut.
pub(crate) const MAX_REASON_BYTES: usize = 512;
/// The most bytes of a segment's name shown.
pub(crate) const MAX_SEGMENT_BYTES: usize = 64;
/// The most bytes of a message's dedupe key.
pub(crate) const MAX_DEDUPE_KEY_BYTES: usize = 200;
/// The most bytes of a message's locale (a BCP 47 tag).
pub(crate) const MAX_LOCALE_BYTES: usize = 35;

/// The most bytes of subject and body one message may carry on `channel`:
/// an SMS is ten segments at most; a letter, an email or a webhook body a
/// generous page or two.
pub const fn message_cap(channel: Channel) -> usize {
    match channel {
        Channel::Sms => 1600,
        Channel::Email | Channel::Webhook | Channel::Print => 64 << 10,
    }
}

/// Checks a scorer's answer for the patrons sent as `sent` (their tokens,
/// in order): one score per patron, in order, each within 0 to 100, in a
/// segment of `segments`, with at most [`MAX_REASONS`] reasons. Returns the
/// scores with their text made safe to show.
pub(crate) fn scores(
    segments: &[String],
    sent: &[String],
    scores: Vec<Scored>,
) -> Result<Vec<Scored>, String> {
    if scores.len() != sent.len() {
        return Err(format!(
            "{} scores for {} patrons",
            scores.len(),
            sent.len()
        ));
    }
    scores
        .into_iter()
        .zip(sent)
        .map(|(score, sent)| {
            if score.patron != *sent {
                return Err(format!(
                    "score for `{}` where `{sent}` was expected; return scores in input order",
                    neutralise(&score.patron, MAX_SEGMENT_BYTES)
                ));
            }
            if !(0.0..=100.0).contains(&score.value) {
                return Err(format!(
                    "score {} for `{sent}` is outside 0 to 100",
                    score.value
                ));
            }
            if !segments.contains(&score.segment) {
                return Err(format!(
                    "segment `{}` for `{sent}` is not one its manifest lists in \
                     `outputs.segments` ({})",
                    neutralise(&score.segment, MAX_SEGMENT_BYTES),
                    segments.join(", ")
                ));
            }
            if score.reasons.len() > MAX_REASONS {
                return Err(format!(
                    "{} reasons for `{sent}`; at most {MAX_REASONS}",
                    score.reasons.len()
                ));
            }
            // Shown in tables and pages: no escape codes, no forged lines.
            Ok(Scored {
                patron: score.patron,
                value: score.value,
                segment: neutralise(&score.segment, MAX_SEGMENT_BYTES),
                reasons: score
                    .reasons
                    .iter()
                    .map(|r| neutralise(r, MAX_REASON_BYTES))
                    .collect(),
            })
        })
        .collect()
}

/// Checks one event's messages: at most one per channel, each within its
/// channel's cap, with a dedupe key, a subject on one line, a plain locale
/// tag and a `send_after` that is a real moment.
pub(crate) fn messages(event: &str, messages: &[Draft]) -> Result<(), String> {
    if messages.len() > 4 {
        return Err(format!(
            "{} messages for event `{event}`; at most one per channel",
            messages.len()
        ));
    }
    for m in messages {
        let on = m.channel.as_str();
        let same = messages.iter().filter(|o| o.channel == m.channel).count();
        if same > 1 {
            return Err(format!(
                "{same} messages on {on} for event `{event}`; at most one per channel"
            ));
        }
        let size = m.subject.len() + m.body.len();
        let cap = message_cap(m.channel);
        if size > cap {
            return Err(format!(
                "{size} bytes on {on} for event `{event}`, over the cap of {cap} for one \
                 message there"
            ));
        }
        if m.dedupe_key.is_empty() {
            return Err(format!(
                "a message on {on} for event `{event}` has no dedupe key"
            ));
        }
        if m.dedupe_key.len() > MAX_DEDUPE_KEY_BYTES || m.dedupe_key.chars().any(char::is_control) {
            return Err(format!(
                "the dedupe key of the message on {on} for event `{event}` is over \
                 {MAX_DEDUPE_KEY_BYTES} bytes or holds a control character"
            ));
        }
        if m.subject.chars().any(char::is_control) {
            return Err(format!(
                "the subject of the message on {on} for event `{event}` holds a line break or \
                 another control character; a subject is one line"
            ));
        }
        if m.locale.len() > MAX_LOCALE_BYTES
            || !m
                .locale
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(format!(
                "the locale of the message on {on} for event `{event}` is not a language tag \
                 such as `en` or `zh-Hans`"
            ));
        }
        if let Some(at) = m.send_after
            && chrono::DateTime::from_timestamp(at, 0).is_none()
        {
            return Err(format!(
                "`send-after` = {at} on the message on {on} for event `{event}` is not a \
                 moment in time"
            ));
        }
    }
    Ok(())
}

/// Builds a policy's rules: every field it does not name is dropped, and a
/// field named twice is an error, since which rule was meant is unknown.
pub(crate) fn policy(rules: &[(Field, Action)]) -> Result<Rules, String> {
    once_each(rules, "the policy")?;
    let mut out = Rules::NONE;
    for &(field, action) in rules {
        out.set(field, action);
    }
    Ok(out)
}

/// Applies a per-record refinement to `policy`: it may only tighten, and
/// may name each field once.
pub(crate) fn refinement(policy: &Rules, refinement: &[(Field, Action)]) -> Result<Rules, String> {
    once_each(refinement, "the refinement")?;
    policy.tighten(refinement)
}

fn once_each(rules: &[(Field, Action)], what: &str) -> Result<(), String> {
    let mut seen = HashSet::new();
    for (field, _) in rules {
        if !seen.insert(*field) {
            return Err(format!(
                "{what} names `{field}` more than once; give one action per field"
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn draft(channel: Channel, subject: &str) -> Draft {
        Draft {
            channel,
            locale: "en".into(),
            subject: subject.into(),
            body: "body".into(),
            dedupe_key: "k".into(),
            send_after: None,
        }
    }

    #[test]
    fn a_policy_or_refinement_naming_a_field_twice_is_refused() {
        let twice = [(Field::Email, Action::Drop), (Field::Email, Action::Keep)];
        assert!(
            policy(&twice)
                .unwrap_err()
                .contains("`email` more than once")
        );
        assert!(refinement(&Rules::ALL, &twice).is_err());
        let once = [(Field::Email, Action::Mask)];
        assert_eq!(policy(&once).unwrap().get(Field::Email), Action::Mask);
        assert_eq!(policy(&once).unwrap().get(Field::Name), Action::Drop);
    }

    #[test]
    fn a_message_that_lies_about_its_shape_is_refused() {
        assert!(messages("e", &[draft(Channel::Email, "Due soon")]).is_ok());
        let forged = draft(Channel::Email, "Due\r\nBcc: all@example.org");
        assert!(messages("e", &[forged]).unwrap_err().contains("one line"));
        let mut far = draft(Channel::Email, "x");
        far.send_after = Some(i64::MAX);
        assert!(messages("e", &[far]).unwrap_err().contains("not a moment"));
        let mut locale = draft(Channel::Email, "x");
        locale.locale = "en\u{1b}[2J".into();
        assert!(messages("e", &[locale]).is_err());
    }
}
