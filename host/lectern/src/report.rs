//! Reports a librarian reads: segment sizes by branch and category with the
//! movement since the previous run, and lists of readers. Built from stored
//! runs, never naming a group smaller than k, and rendered as a terminal
//! table, CSV, JSON, or a self-contained HTML page with charts.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;

use crate::pipeline::{Hidden, suppress_small_groups};
use crate::store::{RunScore, ScoreRun};

/// Segment sizes from one run, and how readers moved since the run before.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SegmentReport {
    /// The scorer.
    pub plugin: String,
    /// Its version.
    pub version: String,
    /// The run's id and as-of date.
    pub run: i64,
    /// The as-of date.
    pub as_of: String,
    /// The run compared with, if there is one.
    pub previous_run: Option<i64>,
    /// The smallest group shown.
    pub k: usize,
    /// Readers per segment.
    pub segments: Vec<Count>,
    /// Readers per segment, branch and category.
    pub groups: Vec<Count>,
    /// Readers who moved from one segment to another.
    pub movement: Vec<Move>,
    /// Segments hidden for being smaller than k.
    pub hidden_segments: Hidden,
    /// Groups by segment, branch and category hidden for the same.
    pub hidden_groups: Hidden,
    /// Moves between segments hidden for the same.
    pub hidden_moves: Hidden,
}

/// A count of readers.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Count {
    /// The segment.
    pub segment: String,
    /// The branch, in `groups`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub branch: Option<String>,
    /// The category, in `groups`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub category: Option<String>,
    /// How many.
    pub patrons: usize,
}

/// Readers who moved between segments.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Move {
    /// The segment in the previous run.
    pub from: String,
    /// The segment now.
    pub to: String,
    /// How many.
    pub patrons: usize,
}

fn counted<K: Ord>(items: impl Iterator<Item = K>) -> Vec<(K, usize)> {
    let mut m = BTreeMap::new();
    for k in items {
        *m.entry(k).or_insert(0) += 1;
    }
    m.into_iter().collect()
}

/// Builds the segment report of `current`, compared with `previous`.
pub fn segment_report(
    (run, meta, current): (i64, &ScoreRun, &[RunScore]),
    previous: Option<(i64, &[RunScore])>,
    k: usize,
) -> SegmentReport {
    let dash = |v: &Option<String>| v.clone().unwrap_or_else(|| "—".into());
    let (segments, h1) =
        suppress_small_groups(counted(current.iter().map(|s| s.segment.clone())), k, |n| {
            *n
        });
    let (groups, h2) = suppress_small_groups(
        counted(
            current
                .iter()
                .map(|s| (s.segment.clone(), dash(&s.home_branch), dash(&s.category))),
        ),
        k,
        |n| *n,
    );
    let (movement, h3) = match previous {
        Some((_, before)) => {
            let was: BTreeMap<&str, &str> = before
                .iter()
                .map(|s| (s.patron.as_str(), s.segment.as_str()))
                .collect();
            let moves = current.iter().filter_map(|s| {
                let from = was.get(s.patron.as_str())?;
                (*from != s.segment).then(|| (from.to_string(), s.segment.clone()))
            });
            suppress_small_groups(counted(moves), k, |n| *n)
        }
        None => (
            Vec::new(),
            Hidden {
                k,
                ..Hidden::default()
            },
        ),
    };
    let mut segments: Vec<Count> = segments
        .into_iter()
        .map(|(segment, patrons)| Count {
            segment,
            branch: None,
            category: None,
            patrons,
        })
        .collect();
    segments.sort_by_key(|c| std::cmp::Reverse(c.patrons));
    let mut groups: Vec<Count> = groups
        .into_iter()
        .map(|((segment, branch, category), patrons)| Count {
            segment,
            branch: Some(branch),
            category: Some(category),
            patrons,
        })
        .collect();
    groups.sort_by_key(|c| std::cmp::Reverse(c.patrons));
    let mut movement: Vec<Move> = movement
        .into_iter()
        .map(|((from, to), patrons)| Move { from, to, patrons })
        .collect();
    movement.sort_by_key(|m| std::cmp::Reverse(m.patrons));
    SegmentReport {
        plugin: meta.plugin.clone(),
        version: meta.version.clone(),
        run,
        as_of: meta.as_of.to_string(),
        previous_run: previous.map(|(id, _)| id),
        k,
        segments,
        groups,
        movement,
        hidden_segments: h1,
        hidden_groups: h2,
        hidden_moves: h3,
    }
}

/// Rows as CSV, quoted as the format needs, every cell safe to open in a
/// spreadsheet.
pub(crate) fn csv<const N: usize>(
    header: [&str; N],
    rows: impl Iterator<Item = [String; N]>,
) -> String {
    let mut w = ::csv::Writer::from_writer(Vec::new());
    let _ = w.write_record(header);
    for row in rows {
        let _ = w.write_record(row.iter().map(|cell| inert(cell).into_owned()));
    }
    String::from_utf8(w.into_inner().unwrap_or_default()).unwrap_or_default()
}

/// A cell a spreadsheet will not run: one that starts with `=`, `+`, `-`,
/// `@`, a tab or a carriage return (a formula, or one in disguise) gets a
/// leading `'`, as OWASP advises against CSV injection.
pub(crate) fn inert(cell: &str) -> std::borrow::Cow<'_, str> {
    if cell.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        std::borrow::Cow::Owned(format!("'{cell}"))
    } else {
        std::borrow::Cow::Borrowed(cell)
    }
}

/// A self-contained page: `body` under `title`, styled inline; no script
/// and nothing fetched.
pub(crate) fn page(title: &str, body: &str) -> String {
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{t}</title>\n<style>\
         body{{font-family:system-ui,sans-serif;margin:2rem;color:#222}}\
         table{{border-collapse:collapse}}\
         td,th{{border:1px solid #ccc;padding:.3rem .6rem;text-align:left;vertical-align:top}}\
         .note{{color:#666}}</style></head><body>\n<h1>{t}</h1>\n{body}</body></html>\n",
        t = esc(title)
    )
}

impl SegmentReport {
    /// The groups as CSV: `segment,branch,category,patrons`.
    pub fn to_csv(&self) -> String {
        let text = |v: &Option<String>| v.clone().unwrap_or_default();
        csv(
            ["segment", "branch", "category", "patrons"],
            self.groups.iter().map(|g| {
                [
                    g.segment.clone(),
                    text(&g.branch),
                    text(&g.category),
                    g.patrons.to_string(),
                ]
            }),
        )
    }

    /// A self-contained HTML page: segment sizes and movement as bar charts,
    /// and the table of groups.
    pub fn to_html(&self) -> String {
        let title = format!(
            "Segments — {} {} as of {}",
            self.plugin, self.version, self.as_of
        );
        let sizes: Vec<(String, usize)> = self
            .segments
            .iter()
            .map(|c| (c.segment.clone(), c.patrons))
            .collect();
        let mut body = format!(
            "<h2>Readers per segment</h2>\n{}<p class=\"note\" id=\"segments-hidden\">{}.</p>\n",
            bar_chart("segment-sizes", &sizes),
            sentence(&self.hidden_segments)
        );
        match self.previous_run {
            None => body.push_str(
                "<h2>Movement</h2>\n<p class=\"note\">This is the first run of this scorer; \
                 movement shows from the next one.</p>\n",
            ),
            Some(run) => {
                let _ = writeln!(body, "<h2>Movement since run {run}</h2>");
                if self.movement.is_empty() {
                    body.push_str("<p class=\"note\">No movement to show.</p>\n");
                } else {
                    let moves: Vec<(String, usize)> = self
                        .movement
                        .iter()
                        .map(|m| (format!("{} → {}", m.from, m.to), m.patrons))
                        .collect();
                    body.push_str(&bar_chart("movement", &moves));
                }
                let _ = writeln!(
                    body,
                    "<p class=\"note\" id=\"moves-hidden\">{}.</p>",
                    sentence(&self.hidden_moves)
                );
            }
        }
        body.push_str(
            "<h2>By branch and category</h2>\n<table id=\"groups\"><tr><th>segment</th><th>branch</th>\
             <th>category</th><th>readers</th></tr>\n",
        );
        for g in &self.groups {
            let _ = writeln!(
                body,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(&g.segment),
                esc(g.branch.as_deref().unwrap_or("")),
                esc(g.category.as_deref().unwrap_or("")),
                g.patrons
            );
        }
        let _ = writeln!(
            body,
            "</table>\n<p class=\"note\" id=\"suppressed\">{}.</p>",
            sentence(&self.hidden_groups)
        );
        page(&title, &body)
    }
}

/// What was hidden, as a sentence for a page: capitalised, HTML-escaped.
fn sentence(hidden: &Hidden) -> String {
    let text = hidden.to_string();
    let mut chars = text.chars();
    let first = chars.next().map(|c| c.to_uppercase().to_string());
    esc(&format!("{}{}", first.unwrap_or_default(), chars.as_str()))
}

/// A horizontal bar chart as inline SVG.
fn bar_chart(id: &str, bars: &[(String, usize)]) -> String {
    let max = bars.iter().map(|(_, n)| *n).max().unwrap_or(1).max(1);
    let (row, label_w, bar_w) = (26, 220, 420);
    let height = row * bars.len().max(1) + 10;
    let mut svg = format!(
        "<svg id=\"{id}\" role=\"img\" width=\"{}\" height=\"{height}\" xmlns=\"http://www.w3.org/2000/svg\">\n",
        label_w + bar_w + 80
    );
    for (i, (label, n)) in bars.iter().enumerate() {
        let y = i * row + 5;
        let w = (bar_w * n / max).max(1);
        let _ = writeln!(
            svg,
            "<text x=\"{}\" y=\"{}\" text-anchor=\"end\" font-size=\"14\">{}</text>\
             <rect class=\"bar\" x=\"{label_w}\" y=\"{y}\" width=\"{w}\" height=\"{}\" fill=\"#3b6ea5\" data-value=\"{n}\"/>\
             <text x=\"{}\" y=\"{}\" font-size=\"13\">{n}</text>",
            label_w - 8,
            y + 16,
            esc(label),
            row - 6,
            label_w + w + 6,
            y + 16
        );
    }
    svg.push_str("</svg>\n");
    svg
}

pub(crate) fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A list of readers for staff: key readers to serve, or lapsed readers to
/// win back. Who they are shows only as far as the role may see.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReaderList {
    /// The list's title.
    pub title: String,
    /// The rows.
    pub readers: Vec<ListedReader>,
    /// Whether the scorer's reasons were left out, because the role may not
    /// see every field the scorer received.
    pub reasons_withheld: bool,
}

/// One reader on a list.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ListedReader {
    /// The name if the role may see it, else the pseudonymous token.
    pub who: String,
    /// The card number, if the role may see it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub card_number: Option<String>,
    /// The segment.
    pub segment: String,
    /// The score.
    pub value: f32,
    /// Why.
    pub reasons: Vec<String>,
}

impl ReaderList {
    /// The rows as CSV: `who,card_number,segment,score,reasons`.
    pub fn to_csv(&self) -> String {
        csv(
            ["who", "card_number", "segment", "score", "reasons"],
            self.readers.iter().map(|r| {
                [
                    r.who.clone(),
                    r.card_number.clone().unwrap_or_default(),
                    r.segment.clone(),
                    format!("{:.1}", r.value),
                    r.reasons.join("; "),
                ]
            }),
        )
    }

    /// A self-contained HTML page with the list as a table.
    pub fn to_html(&self) -> String {
        let mut body = String::from(
            "<table id=\"readers\"><tr><th>reader</th><th>card</th><th>segment</th><th>score</th>\
             <th>why</th></tr>\n",
        );
        for r in &self.readers {
            let why: Vec<String> = r.reasons.iter().map(|x| esc(x)).collect();
            let _ = writeln!(
                body,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{:.1}</td><td>{}</td></tr>",
                esc(&r.who),
                esc(r.card_number.as_deref().unwrap_or("")),
                esc(&r.segment),
                r.value,
                why.join("<br>")
            );
        }
        body.push_str("</table>\n");
        page(&self.title, &body)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn formulas_in_csv_cells_are_made_inert() {
        let out = super::csv(
            ["name", "n"],
            [
                ["=HYPERLINK(\"http://x\")".to_string(), "3".to_string()],
                ["=cmd|' /C calc'!A0".to_string(), "-1".to_string()],
                ["Ada".to_string(), "@SUM(1)".to_string()],
            ]
            .into_iter(),
        );
        for line in out.lines().skip(1) {
            for cell in line.split(',') {
                let cell = cell.trim_start_matches('"');
                assert!(!cell.starts_with(['=', '+', '-', '@']), "{line}");
            }
        }
        assert!(out.contains("Ada"));
    }
}
