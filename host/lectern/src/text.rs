//! Plugin text made safe to show: control characters (a terminal's escape
//! codes, a newline that would forge a log line) are written out as
//! escapes, and the text is cut to a cap, on a character boundary.

/// `s` with every control character escaped (`\u{1b}`, `\n`), cut to at
/// most `max` bytes with `…` where it was cut.
pub(crate) fn neutralise(s: &str, max: usize) -> String {
    let unsafe_char = |c: char| c.is_control() || is_bidi_override(c);
    // The common case, plain text within the cap, costs one copy.
    if s.len() <= max && !s.chars().any(unsafe_char) {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len().min(max) + 3);
    for c in s.chars() {
        let width = if unsafe_char(c) {
            c.escape_default().count()
        } else {
            c.len_utf8()
        };
        if out.len() + width > max {
            out.push('…');
            return out;
        }
        if unsafe_char(c) {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// The Unicode bidirectional overrides, which reorder what a terminal
/// shows (the "Trojan Source" trick).
fn is_bidi_override(c: char) -> bool {
    matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// The most bytes of a plugin's error text kept.
pub(crate) const MAX_ERROR_BYTES: usize = 1024;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_and_newlines_are_written_out_and_text_is_capped() {
        assert_eq!(
            neutralise("ok\u{1b}[2J\nerror: forged", 100),
            "ok\\u{1b}[2J\\nerror: forged"
        );
        assert_eq!(neutralise("abc\u{202e}def", 100), "abc\\u{202e}def");
        assert_eq!(neutralise("王小明王小明", 7), "王小…");
        assert_eq!(neutralise(&"x".repeat(5000), 10).len(), 10 + '…'.len_utf8());
        assert_eq!(neutralise("plain text", 100), "plain text");
    }
}
