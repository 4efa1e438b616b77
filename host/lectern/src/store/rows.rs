//! How both stores turn their columns into the store's types and back:
//! dates and times as text, field lists, channels, and the rows that hold
//! JSON. Each backend reads its columns its own way; what a value means is
//! decided here once.

use anyhow::{Context as _, Result};
use chrono::{DateTime, NaiveDate, Utc};

use crate::model::Channel;
use crate::privacy::Field;
use crate::store::readers::SurveyAnswers;
use crate::store::registry::InstalledPlugin;

/// A date as the stores keep it: ISO text, which sorts as dates do.
pub(super) fn date(d: Option<NaiveDate>) -> Option<String> {
    d.map(|d| d.to_string())
}

/// A date the store wrote; an unreadable one is absent.
pub(super) fn parse_date(s: Option<String>) -> Option<NaiveDate> {
    s.and_then(|s| s.parse().ok())
}

/// A time the store wrote as RFC 3339.
pub(super) fn time(s: &str) -> Result<DateTime<Utc>> {
    Ok(DateTime::parse_from_rfc3339(s)
        .with_context(|| format!("{s:?} is not a time"))?
        .with_timezone(&Utc))
}

/// An optional time the store wrote as RFC 3339.
pub(super) fn opt_time(s: Option<String>) -> Result<Option<DateTime<Utc>>> {
    s.as_deref().map(time).transpose()
}

/// A time the outbox keeps as Unix seconds.
pub(super) fn unix_time(ts: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(ts, 0).unwrap_or_default()
}

/// Field names, comma-separated.
pub(super) fn fields_text(fields: &[Field]) -> String {
    fields
        .iter()
        .map(|f| f.as_str())
        .collect::<Vec<_>>()
        .join(",")
}

/// The fields a run's scorer received; a name this version does not know
/// makes the list unknown, which counts as every field.
pub(super) fn fields_of(text: Option<String>) -> Option<Vec<Field>> {
    let text = text?;
    text.split(',')
        .filter(|f| !f.is_empty())
        .map(|f| f.parse().ok())
        .collect()
}

/// A JSON list of channels; none when absent or unreadable.
pub(super) fn channels_from(text: Option<String>) -> Vec<Channel> {
    text.and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or_default()
}

/// A channel by its name; one this version does not know is print.
pub(super) fn channel_named(name: &str) -> Channel {
    serde_json::from_value(serde_json::Value::String(name.to_string())).unwrap_or(Channel::Print)
}

/// An installed plugin whose JSON columns (fields, events, config) and
/// installation time are still text.
pub(super) fn decode_plugin(
    (mut p, [fields, events, config, at]): (InstalledPlugin, [String; 4]),
) -> Result<InstalledPlugin> {
    let context = || format!("the registry's row for plugin {} is damaged", p.id);
    p.fields = serde_json::from_str(&fields).with_context(context)?;
    p.events = serde_json::from_str(&events).with_context(context)?;
    p.config = serde_json::from_str(&config).with_context(context)?;
    p.installed_at = time(&at).with_context(context)?;
    Ok(p)
}

/// A survey answer from its text columns, in the order survey, patron,
/// category, segment, locale, day, answers.
pub(super) fn decode_answer(
    (row, use_for_service): (Vec<Option<String>>, bool),
) -> Result<SurveyAnswers> {
    let mut row = row.into_iter();
    let mut next = || row.next().flatten();
    let survey = next().context("a survey answer's row is damaged")?;
    let (patron, category, segment) = (next(), next(), next());
    let locale = next().unwrap_or_default();
    let answered_on = parse_date(next()).context("a survey answer has no day")?;
    let answers = serde_json::from_str(&next().context("a survey answer has no answers")?)
        .context("a survey answer's answers are damaged")?;
    Ok(SurveyAnswers {
        survey,
        patron,
        category,
        segment,
        locale,
        answered_on,
        use_for_service,
        answers,
        attributes: Vec::new(),
    })
}
