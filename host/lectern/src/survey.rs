//! Surveys the library defines in a file, readers answer on a page, and
//! staff read as aggregates with k-suppression.
//!
//! ```toml
//! id = "reading-2026"
//! link-answers = false          # true: keep the patron with the answers, if they agree
//! title = { en = "How you read", zh = "阅读习惯调查" }
//! intro = { en = "Five questions.", zh = "五个问题。" }
//!
//! [[questions]]
//! id = "formats"
//! kind = "multiple"             # single, multiple, scale or text
//! text = { en = "Which do you use?", zh = "您使用哪些？" }
//! options = [
//!   { id = "print", en = "Printed books", zh = "纸质图书" },
//!   { id = "ebook", en = "E-books", zh = "电子书" },
//! ]
//! attribute = "formats"         # a linked answer the reader lets the library use
//!                               # becomes the patron attribute `survey.formats`
//!
//! [[questions]]
//! id = "satisfaction"
//! kind = "scale"
//! min = 1
//! max = 5
//! text = { en = "How satisfied are you?", zh = "您的满意度？" }
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::Path;

use anyhow::{Result, bail};
use serde::{Deserialize, Serialize};

use crate::store::{Answer, SurveyAnswers};

/// Text in the languages the library writes in: `en` always, `zh`
/// where given.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Text {
    /// English.
    pub en: String,
    /// Chinese; English is shown where it is missing.
    #[serde(default)]
    pub zh: Option<String>,
}

impl Text {
    /// The text in `lang` (`zh…` for Chinese, anything else English).
    pub fn get(&self, lang: &str) -> &str {
        match &self.zh {
            Some(zh) if lang.to_ascii_lowercase().starts_with("zh") => zh,
            _ => &self.en,
        }
    }
}

/// What kind of answer a question takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    /// One of the options.
    Single,
    /// Any of the options.
    Multiple,
    /// A whole number from `min` to `max`.
    Scale,
    /// Free text.
    Text,
}

/// One option of a choice question.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Choice {
    /// Its id, as answers store it.
    pub id: String,
    /// English.
    pub en: String,
    /// Chinese.
    #[serde(default)]
    pub zh: Option<String>,
}

impl Choice {
    fn label(&self, lang: &str) -> &str {
        match &self.zh {
            Some(zh) if lang.starts_with("zh") => zh,
            _ => &self.en,
        }
    }
}

/// One question.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Question {
    /// Its id, unique in the survey.
    pub id: String,
    /// Its kind.
    pub kind: Kind,
    /// The question.
    pub text: Text,
    /// The options of a choice question.
    #[serde(default)]
    pub options: Vec<Choice>,
    /// The scale's lowest point.
    #[serde(default)]
    pub min: Option<u8>,
    /// The scale's highest point.
    #[serde(default)]
    pub max: Option<u8>,
    /// Whether an answer is needed.
    #[serde(default)]
    pub required: bool,
    /// The patron attribute (`survey.<name>`) a linked answer becomes when
    /// the reader lets the library use it.
    #[serde(default)]
    pub attribute: Option<String>,
    /// `subjects`: the options are subjects as loans carry them (such as
    /// `QA76`), and each reader who picks one names it as a need, which
    /// `lectern report needs` counts.
    #[serde(default)]
    pub feeds: Option<Feeds>,
}

/// What a question's answers feed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Feeds {
    /// The needs report's subjects.
    Subjects,
}

/// Who a survey invites when `lectern notify --survey ID` names no
/// segment: a share of each segment of a scorer's latest run, so that the
/// heaviest users can be asked most.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Sampling {
    /// The scorer whose latest run gives the segments.
    pub scorer: String,
    /// The share of each segment to invite, from 0 to 1.
    pub shares: BTreeMap<String, f64>,
}

impl Question {
    /// The scale's range.
    pub fn scale(&self) -> (u8, u8) {
        (self.min.unwrap_or(1), self.max.unwrap_or(5))
    }
}

/// A survey, as its file defines it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct SurveyDef {
    /// Its id: letters, digits and `-`.
    pub id: String,
    /// Whether answers keep the patron, for readers who agree to it.
    /// Anonymous otherwise.
    #[serde(default)]
    pub link_answers: bool,
    /// The title.
    pub title: Text,
    /// A line under the title.
    #[serde(default)]
    pub intro: Option<Text>,
    /// The questions, in order.
    pub questions: Vec<Question>,
    /// Who to invite by default.
    #[serde(default)]
    pub sampling: Option<Sampling>,
}

/// Free text longer than this is refused.
pub const TEXT_LIMIT: usize = 2000;

impl SurveyDef {
    /// Reads and checks the survey file `path`.
    pub fn load(path: &Path) -> crate::Result<SurveyDef> {
        load_file(path, "survey", SurveyDef::parse)
    }

    /// Parses and checks a survey definition.
    pub fn parse(text: &str) -> Result<SurveyDef> {
        let def: SurveyDef = crate::config::from_toml(text)?;
        def.check()?;
        Ok(def)
    }

    fn check(&self) -> Result<()> {
        let name_ok = |s: &str| {
            !s.is_empty()
                && s.len() <= 64
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        };
        if !name_ok(&self.id) {
            bail!(
                "`id` = {:?}: use 1 to 64 letters, digits, `-` or `_`",
                self.id
            );
        }
        if self.questions.is_empty() {
            bail!("the survey has no questions: add a [[questions]] table");
        }
        let mut seen = BTreeSet::new();
        for q in &self.questions {
            if !name_ok(&q.id) || !seen.insert(q.id.as_str()) {
                bail!(
                    "question id {:?}: give each question its own id of letters, digits, `-` or `_`",
                    q.id
                );
            }
            match q.kind {
                Kind::Single | Kind::Multiple => {
                    if q.options.len() < 2 {
                        bail!("question `{}`: a choice needs at least two options", q.id);
                    }
                    let mut ids = BTreeSet::new();
                    if let Some(o) = q
                        .options
                        .iter()
                        .find(|o| !name_ok(&o.id) || !ids.insert(&o.id))
                    {
                        bail!(
                            "question `{}`: option id {:?} is empty, repeated or not a plain name",
                            q.id,
                            o.id
                        );
                    }
                }
                Kind::Scale => {
                    let (lo, hi) = q.scale();
                    if lo >= hi || hi > 10 {
                        bail!(
                            "question `{}`: a scale runs from `min` to a larger `max` of at most 10",
                            q.id
                        );
                    }
                }
                Kind::Text => {}
            }
            if q.kind != Kind::Single && q.kind != Kind::Multiple && !q.options.is_empty() {
                bail!(
                    "question `{}`: only single and multiple choice take options",
                    q.id
                );
            }
            if let Some(a) = &q.attribute
                && !name_ok(a)
            {
                bail!("question `{}`: attribute {a:?} is not a plain name", q.id);
            }
            if q.feeds.is_some() && !matches!(q.kind, Kind::Single | Kind::Multiple) {
                bail!(
                    "question `{}`: `feeds = \"subjects\"` needs a choice question whose options \
                     are subjects",
                    q.id
                );
            }
        }
        if let Some(s) = &self.sampling {
            if s.shares.is_empty() {
                bail!("[sampling]: give `shares`, such as {{ key-reader = 1.0, active = 0.3 }}");
            }
            if let Some((seg, share)) = s.shares.iter().find(|(_, v)| !(0.0..=1.0).contains(*v)) {
                bail!("[sampling] shares: `{seg}` = {share}; give a share from 0 to 1");
            }
        }
        Ok(())
    }

    /// The answers in a posted form: `q.<id>` fields, repeated for a
    /// multiple choice. Each problem names its question.
    pub fn answers_from(
        &self,
        form: &[(String, String)],
        lang: &str,
    ) -> std::result::Result<BTreeMap<String, Answer>, Vec<String>> {
        let mut out = BTreeMap::new();
        let mut problems = Vec::new();
        for q in &self.questions {
            let key = format!("q.{}", q.id);
            let values: Vec<&str> = form
                .iter()
                .filter(|(k, _)| *k == key)
                .map(|(_, v)| v.trim())
                .filter(|v| !v.is_empty())
                .collect();
            let question = q.text.get(lang);
            let zh = lang.starts_with("zh");
            let answer = match (q.kind, values.as_slice()) {
                (_, []) => None,
                (Kind::Single, [v]) if q.options.iter().any(|o| o.id == *v) => {
                    Some(Answer::Single(v.to_string()))
                }
                (Kind::Multiple, vs) if vs.iter().all(|v| q.options.iter().any(|o| o.id == *v)) => {
                    let set: BTreeSet<String> = vs.iter().map(|v| v.to_string()).collect();
                    Some(Answer::Multiple(set.into_iter().collect()))
                }
                (Kind::Scale, [v]) => match v.parse::<u8>() {
                    Ok(n) if (q.scale().0..=q.scale().1).contains(&n) => Some(Answer::Scale(n)),
                    _ => {
                        problems.push(if zh {
                            format!(
                                "“{question}”：请选择 {} 到 {} 之间的数值。",
                                q.scale().0,
                                q.scale().1
                            )
                        } else {
                            format!(
                                "“{question}”: choose a point from {} to {}.",
                                q.scale().0,
                                q.scale().1
                            )
                        });
                        None
                    }
                },
                (Kind::Text, [v]) if v.chars().count() <= TEXT_LIMIT => {
                    Some(Answer::Text(v.to_string()))
                }
                (Kind::Text, [_]) => {
                    problems.push(if zh {
                        format!("“{question}”：请将回答控制在 {TEXT_LIMIT} 字以内。")
                    } else {
                        format!("“{question}”: keep the answer under {TEXT_LIMIT} characters.")
                    });
                    None
                }
                _ => {
                    problems.push(if zh {
                        format!("“{question}”：请从所列选项中选择。")
                    } else {
                        format!("“{question}”: choose from the options shown.")
                    });
                    None
                }
            };
            match answer {
                Some(a) => {
                    out.insert(q.id.clone(), a);
                }
                None if q.required && values.is_empty() => problems.push(if zh {
                    format!("“{question}”：此题必答。")
                } else {
                    format!("“{question}”: this question needs an answer.")
                }),
                None => {}
            }
        }
        if problems.is_empty() {
            Ok(out)
        } else {
            Err(problems)
        }
    }
}

impl SurveyDef {
    /// The patron attributes `answers` become: `survey.<attribute>` for
    /// each answered question that names one; several choices joined by
    /// `;`.
    pub fn attributes_of(&self, answers: &BTreeMap<String, Answer>) -> Vec<(String, String)> {
        self.questions
            .iter()
            .filter_map(|q| {
                let name = q.attribute.as_ref()?;
                let value = match answers.get(&q.id)? {
                    Answer::Single(v) | Answer::Text(v) => v.clone(),
                    Answer::Multiple(vs) => vs.join(";"),
                    Answer::Scale(n) => n.to_string(),
                };
                Some((format!("survey.{name}"), value))
            })
            .collect()
    }
}

/// How survey results are grouped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum GroupBy {
    /// Everyone together.
    All,
    /// By the reader's category.
    Category,
    /// By the reader's segment in the scorer the survey sampled from.
    Segment,
}

/// One question's results in one group.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct QuestionResult {
    /// The question's id.
    pub id: String,
    /// The question, in the report's language.
    pub text: String,
    /// Its kind.
    pub kind: Kind,
    /// How many in the group answered it.
    pub answered: usize,
    /// Each option (or scale point) with how many chose it.
    pub counts: Vec<(String, usize)>,
    /// The mean of a scale.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mean: Option<f64>,
    /// Free-text answers, in the order given.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub texts: Vec<String>,
}

/// The results of one group.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GroupResult {
    /// The group: `all`, a category or a segment (`(none)` for readers
    /// without one).
    pub group: String,
    /// How many readers in it answered.
    pub respondents: usize,
    /// Per question; empty when the group is suppressed.
    pub questions: Vec<QuestionResult>,
    /// Whether it is withheld: fewer than k readers, or withheld so that a
    /// smaller group cannot be worked out from the total.
    pub suppressed: bool,
}

/// A survey's results.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SurveyResults {
    /// The survey's id.
    pub survey: String,
    /// Its title.
    pub title: String,
    /// The smallest group shown.
    pub k: usize,
    /// How the groups are made.
    pub by: GroupBy,
    /// Readers who answered.
    pub respondents: usize,
    /// The groups, largest first; `all` alone when not grouped.
    pub groups: Vec<GroupResult>,
    /// What was withheld, in words, when anything was.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

fn tally(def: &SurveyDef, answers: &[&SurveyAnswers], lang: &str) -> Vec<QuestionResult> {
    def.questions
        .iter()
        .map(|q| {
            let given: Vec<&Answer> = answers
                .iter()
                .filter_map(|a| a.answers.get(&q.id))
                .collect();
            let mut counts: Vec<(String, usize)> = Vec::new();
            let mut mean = None;
            let mut texts = Vec::new();
            match q.kind {
                Kind::Single | Kind::Multiple => {
                    for o in &q.options {
                        let n = given
                            .iter()
                            .filter(|a| match a {
                                Answer::Single(v) => *v == o.id,
                                Answer::Multiple(vs) => vs.contains(&o.id),
                                _ => false,
                            })
                            .count();
                        counts.push((o.label(lang).to_string(), n));
                    }
                }
                Kind::Scale => {
                    let points: Vec<u8> = given
                        .iter()
                        .filter_map(|a| match a {
                            Answer::Scale(n) => Some(*n),
                            _ => None,
                        })
                        .collect();
                    let (lo, hi) = q.scale();
                    for p in lo..=hi {
                        counts.push((p.to_string(), points.iter().filter(|&&n| n == p).count()));
                    }
                    if !points.is_empty() {
                        mean = Some(
                            points.iter().map(|&n| f64::from(n)).sum::<f64>() / points.len() as f64,
                        );
                    }
                }
                Kind::Text => {
                    texts = given
                        .iter()
                        .filter_map(|a| match a {
                            Answer::Text(t) => Some(t.clone()),
                            _ => None,
                        })
                        .collect();
                }
            }
            QuestionResult {
                id: q.id.clone(),
                text: q.text.get(lang).to_string(),
                kind: q.kind,
                answered: given.len(),
                counts,
                mean,
                texts,
            }
        })
        .collect()
}

/// The results of `answers` to `def`, grouped `by`, with every group of
/// fewer than `k` readers withheld, and one more withheld where a single
/// withheld group could otherwise be worked out from the total.
pub fn results(
    def: &SurveyDef,
    answers: &[SurveyAnswers],
    by: GroupBy,
    k: usize,
    lang: &str,
) -> SurveyResults {
    let mut groups: BTreeMap<String, Vec<&SurveyAnswers>> = BTreeMap::new();
    for a in answers {
        let key = match by {
            GroupBy::All => "all".to_string(),
            GroupBy::Category => a.category.clone().unwrap_or_else(|| "(none)".into()),
            GroupBy::Segment => a.segment.clone().unwrap_or_else(|| "(none)".into()),
        };
        groups.entry(key).or_default().push(a);
    }
    let mut out: Vec<GroupResult> = groups
        .into_iter()
        .map(|(group, members)| {
            let small = members.len() < k;
            GroupResult {
                respondents: members.len(),
                questions: if small {
                    Vec::new()
                } else {
                    tally(def, &members, lang)
                },
                suppressed: small,
                group,
            }
        })
        .collect();
    out.sort_by(|a, b| {
        b.respondents
            .cmp(&a.respondents)
            .then(a.group.cmp(&b.group))
    });
    // With the total known, the withheld groups together are the total less
    // the groups shown: keep withholding the smallest shown group until the
    // withheld ones hold k readers or more between them.
    if by != GroupBy::All {
        loop {
            let hidden: usize = out
                .iter()
                .filter(|g| g.suppressed)
                .map(|g| g.respondents)
                .sum();
            let any_hidden = out.iter().any(|g| g.suppressed);
            if !any_hidden || hidden >= k {
                break;
            }
            let Some(g) = out.iter_mut().rev().find(|g| !g.suppressed) else {
                break;
            };
            g.suppressed = true;
            g.questions.clear();
        }
    }
    let withheld = out.iter().filter(|g| g.suppressed).count();
    for g in out.iter_mut().filter(|g| g.suppressed) {
        g.respondents = 0;
    }
    let note = (withheld > 0).then(|| {
        format!(
            "{withheld} group(s) withheld: fewer than {k} readers answered in them, or showing \
             them would let a withheld group be worked out; their answers count in no group shown"
        )
    });
    SurveyResults {
        survey: def.id.clone(),
        title: def.title.get(lang).to_string(),
        k,
        by,
        respondents: if answers.len() < k { 0 } else { answers.len() },
        groups: out,
        note,
    }
}

impl SurveyResults {
    /// One row per group, question and answer: `group,respondents,question,answer,count`.
    /// Free text gives one row per answer with an empty count.
    pub fn to_csv(&self) -> String {
        let mut rows = Vec::new();
        for g in &self.groups {
            if g.suppressed {
                rows.push([
                    g.group.clone(),
                    "withheld".into(),
                    String::new(),
                    String::new(),
                    String::new(),
                ]);
                continue;
            }
            for q in &g.questions {
                for (label, n) in &q.counts {
                    rows.push([
                        g.group.clone(),
                        g.respondents.to_string(),
                        q.id.clone(),
                        label.clone(),
                        n.to_string(),
                    ]);
                }
                for t in &q.texts {
                    rows.push([
                        g.group.clone(),
                        g.respondents.to_string(),
                        q.id.clone(),
                        t.clone(),
                        String::new(),
                    ]);
                }
            }
        }
        let mut out = crate::report::csv(
            ["group", "respondents", "question", "answer", "count"],
            rows.into_iter(),
        );
        if let Some(note) = &self.note {
            let _ = writeln!(out, "# {note}");
        }
        out
    }

    /// A plain table for a terminal.
    pub fn to_table(&self) -> String {
        let mut out = format!(
            "{} ({}): {} readers answered, k = {}\n",
            self.title, self.survey, self.respondents, self.k
        );
        for g in &self.groups {
            if g.suppressed {
                let _ = writeln!(out, "\n[{}] withheld", g.group);
                continue;
            }
            let _ = writeln!(out, "\n[{}] {} readers", g.group, g.respondents);
            for q in &g.questions {
                let _ = writeln!(out, "  {} ({} answered)", q.text, q.answered);
                for (label, n) in &q.counts {
                    let _ = writeln!(out, "    {n:>5}  {label}");
                }
                if let Some(m) = q.mean {
                    let _ = writeln!(out, "    mean {m:.2}");
                }
                for t in &q.texts {
                    let _ = writeln!(out, "    - {}", crate::text::neutralise(t, 300));
                }
            }
        }
        if let Some(note) = &self.note {
            let _ = writeln!(out, "\nNote: {note}");
        }
        out
    }

    /// A self-contained HTML page with a bar per count.
    pub fn to_html(&self) -> String {
        let e = crate::report::esc;
        let mut body = format!(
            "<p>{} readers answered. Groups of fewer than {} readers are withheld.</p>\n",
            self.respondents, self.k
        );
        if let Some(note) = &self.note {
            let _ = writeln!(body, "<p class=\"note\" role=\"note\">{}</p>", e(note));
        }
        for g in &self.groups {
            if g.suppressed {
                let _ = writeln!(
                    body,
                    "<h2>{}</h2>\n<p class=\"note\">Withheld.</p>",
                    e(&g.group)
                );
                continue;
            }
            let _ = writeln!(
                body,
                "<h2>{} <small>({} readers)</small></h2>",
                e(&g.group),
                g.respondents
            );
            for q in &g.questions {
                let _ = writeln!(body, "<h3>{}</h3>", e(&q.text));
                if !q.counts.is_empty() {
                    let most = q.counts.iter().map(|c| c.1).max().unwrap_or(0).max(1);
                    body.push_str("<table><thead><tr><th scope=\"col\">Answer</th><th scope=\"col\">Readers</th><th scope=\"col\"><span class=\"sr\">Share</span></th></tr></thead><tbody>\n");
                    for (label, n) in &q.counts {
                        let width = n * 100 / most;
                        let _ = writeln!(
                            body,
                            "<tr><td>{}</td><td>{n}</td><td><span class=\"bar\" style=\"width:{width}%\"></span></td></tr>",
                            e(label)
                        );
                    }
                    body.push_str("</tbody></table>\n");
                }
                if let Some(m) = q.mean {
                    let _ = writeln!(body, "<p>Mean: {m:.2}</p>");
                }
                if !q.texts.is_empty() {
                    body.push_str("<ul class=\"texts\">\n");
                    for t in &q.texts {
                        let _ = writeln!(body, "<li>{}</li>", e(t));
                    }
                    body.push_str("</ul>\n");
                }
            }
        }
        crate::report::page(&format!("Survey: {}", self.title), &body)
    }
}

/// Reads every survey in `paths`; an id used twice is an error.
pub(crate) fn load_all(paths: &[std::path::PathBuf]) -> crate::Result<Vec<SurveyDef>> {
    load_each(paths, "survey", SurveyDef::load, |d| &d.id)
}

/// Reads the definition file `path` (a survey, a campaign) with `parse`;
/// an error names the file.
pub(crate) fn load_file<T>(
    path: &Path,
    what: &str,
    parse: impl FnOnce(&str) -> Result<T>,
) -> crate::Result<T> {
    let text = std::fs::read_to_string(path).map_err(|e| crate::Error::Invalid {
        where_: path.display().to_string(),
        message: format!("cannot read the {what}: {e}"),
    })?;
    parse(&text).map_err(|e| crate::Error::Invalid {
        where_: path.display().to_string(),
        message: format!("{e:#}"),
    })
}

/// Reads every definition in `paths` with `load`; an id used twice is an
/// error that names the second file.
pub(crate) fn load_each<T>(
    paths: &[std::path::PathBuf],
    what: &str,
    load: impl Fn(&Path) -> crate::Result<T>,
    id: impl Fn(&T) -> &str,
) -> crate::Result<Vec<T>> {
    let mut out: Vec<T> = Vec::new();
    for p in paths {
        let def = load(p)?;
        if out.iter().any(|d| id(d) == id(&def)) {
            return Err(crate::Error::Invalid {
                where_: p.display().to_string(),
                message: format!(
                    "{what} id `{}` is used by another {what}: give each its own",
                    id(&def)
                ),
            });
        }
        out.push(def);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = include_str!("../../../samples/surveys/reading.toml");

    fn answer(category: &str, formats: &[&str]) -> SurveyAnswers {
        SurveyAnswers {
            survey: "reading".into(),
            patron: None,
            category: Some(category.into()),
            segment: None,
            locale: "en".into(),
            answered_on: "2026-12-01".parse().unwrap(),
            use_for_service: false,
            attributes: Vec::new(),
            answers: [(
                "formats".to_string(),
                Answer::Multiple(formats.iter().map(|f| f.to_string()).collect()),
            )]
            .into(),
        }
    }

    #[test]
    fn a_survey_file_is_checked_and_says_where_it_is_wrong() {
        let def = SurveyDef::parse(SAMPLE).unwrap();
        assert_eq!(def.questions.len(), 4);
        let broken = SAMPLE.replace("kind = \"scale\"", "kind = \"slider\"");
        let e = SurveyDef::parse(&broken).unwrap_err().to_string();
        assert!(e.starts_with("line "), "{e}");
        let one_option = "id = \"x\"\ntitle = { en = \"X\" }\n[[questions]]\nid = \"q\"\nkind = \"single\"\ntext = { en = \"Q\" }\noptions = [{ id = \"a\", en = \"A\" }]\n";
        let e = SurveyDef::parse(one_option).unwrap_err().to_string();
        assert!(e.contains("at least two options"), "{e}");
    }

    #[test]
    fn a_form_gives_answers_and_refuses_what_the_survey_does_not_offer() {
        let def = SurveyDef::parse(SAMPLE).unwrap();
        let form = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        let got = def
            .answers_from(
                &form(&[
                    ("q.formats", "ebook"),
                    ("q.formats", "print"),
                    ("q.formats", "ebook"),
                    ("q.satisfaction", "4"),
                    ("q.wish", "  more  "),
                    ("q.unknown", "x"),
                ]),
                "en",
            )
            .unwrap();
        assert_eq!(
            got["formats"],
            Answer::Multiple(vec!["ebook".into(), "print".into()])
        );
        assert_eq!(got["satisfaction"], Answer::Scale(4));
        assert_eq!(got["wish"], Answer::Text("more".into()));
        assert!(!got.contains_key("visits"));
        let problems = def
            .answers_from(
                &form(&[("q.visits", "daily"), ("q.satisfaction", "9")]),
                "zh-CN",
            )
            .unwrap_err();
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(problems[0].contains("您多久到馆一次"), "{problems:?}");
    }

    #[test]
    fn small_groups_are_withheld_until_what_is_withheld_holds_k_readers() {
        let def = SurveyDef::parse(SAMPLE).unwrap();
        let mut answers: Vec<SurveyAnswers> = (0..6)
            .map(|_| answer("undergraduate", &["print"]))
            .collect();
        answers.extend((0..5).map(|_| answer("graduate", &["ebook"])));
        answers.push(answer("faculty", &["databases"]));
        let r = results(&def, &answers, GroupBy::Category, 5, "en");
        let shown: Vec<&str> = r
            .groups
            .iter()
            .filter(|g| !g.suppressed)
            .map(|g| g.group.as_str())
            .collect();
        // Faculty (1) is under k; with the total known it could be worked
        // out from the rest, so graduate (5), the smallest shown, goes too.
        assert_eq!(shown, vec!["undergraduate"]);
        // Two groups of one: together still under k, so one more goes.
        let mut two: Vec<SurveyAnswers> = (0..20).map(|_| answer("a", &["print"])).collect();
        two.extend((0..7).map(|_| answer("b", &["print"])));
        two.push(answer("c", &["ebook"]));
        two.push(answer("d", &["databases"]));
        let r = results(&def, &two, GroupBy::Category, 5, "en");
        let shown: Vec<&str> = r
            .groups
            .iter()
            .filter(|g| !g.suppressed)
            .map(|g| g.group.as_str())
            .collect();
        assert_eq!(shown, vec!["a"]);
        assert!(r.note.is_some());
        assert!(
            r.groups
                .iter()
                .filter(|g| g.suppressed)
                .all(|g| g.respondents == 0)
        );
        let all = results(&def, &answers, GroupBy::All, 5, "en");
        assert_eq!(all.respondents, 12);
        let formats = &all.groups[0].questions[0];
        assert_eq!(
            formats.counts,
            vec![
                ("Printed books".to_string(), 6),
                ("E-books".to_string(), 5),
                ("Databases and journals".to_string(), 1)
            ]
        );
        let csv = all.to_csv();
        assert!(
            csv.starts_with("group,respondents,question,answer,count\n"),
            "{csv}"
        );
        let html = all.to_html();
        assert!(
            html.contains("<html lang=\"en\">") && !html.contains("<script"),
            "{html}"
        );
    }
}
