//! Reading JSON-lines input, with errors that name the file, the line and
//! the field.

use std::fmt;
use std::io::BufRead;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;

/// A record that could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputError {
    /// The file.
    pub path: PathBuf,
    /// The line, from 1; 0 when the file itself could not be read.
    pub line: usize,
    /// The field, as a dotted path such as `activity.loans_30d`, when known.
    pub field: Option<String>,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for InputError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.path.display())?;
        if self.line > 0 {
            write!(f, ":{}", self.line)?;
        }
        if let Some(field) = &self.field {
            write!(f, ": field `{field}`")?;
        }
        write!(f, ": {}", self.message)
    }
}

impl std::error::Error for InputError {}

/// Reads one `T` per non-blank line of `path`. The first bad line stops the
/// read, and the error says where it is and what is wrong with it.
pub fn read_jsonl<T: DeserializeOwned>(path: &Path) -> Result<Vec<T>, InputError> {
    let file = std::fs::File::open(path).map_err(|e| InputError {
        path: path.to_path_buf(),
        line: 0,
        field: None,
        message: format!("cannot open it: {e}"),
    })?;
    parse_jsonl(path, std::io::BufReader::new(file))
}

/// Reads one `T` per non-blank line of `input`, naming `path` in errors.
pub(crate) fn parse_jsonl<T: DeserializeOwned>(
    path: &Path,
    input: impl BufRead,
) -> Result<Vec<T>, InputError> {
    let err = |line: usize, field: Option<String>, message: String| InputError {
        path: path.to_path_buf(),
        line,
        field,
        message,
    };
    let mut out = Vec::new();
    for (i, line) in input.lines().enumerate() {
        let line = line.map_err(|e| err(i + 1, None, format!("cannot read it: {e}")))?;
        if line.trim().is_empty() {
            continue;
        }
        let de = &mut serde_json::Deserializer::from_str(&line);
        let record = serde_path_to_error::deserialize(de).map_err(|e| {
            let field = e.path().to_string();
            let field = (field != ".").then_some(field);
            let inner = e.into_inner();
            // serde_json appends "at line 1 column N": the line is ours, the
            // column is useful.
            let message = inner
                .to_string()
                .replace(" at line 1 column ", " at column ");
            err(i + 1, field, message)
        })?;
        out.push(record);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Patron;

    fn read(text: &str) -> Result<Vec<Patron>, InputError> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("patrons.jsonl");
        std::fs::write(&path, text).unwrap();
        read_jsonl(&path).map_err(|mut e| {
            e.path = PathBuf::from("patrons.jsonl");
            e
        })
    }

    #[test]
    fn bad_field_names_line_and_field() {
        let e = read("{\"id\":\"a\"}\n\n{\"id\":\"b\",\"activity\":{\"loans_30d\":\"many\"}}\n")
            .unwrap_err();
        assert_eq!(e.line, 3);
        assert_eq!(e.field.as_deref(), Some("activity.loans_30d"));
        assert!(
            e.to_string()
                .starts_with("patrons.jsonl:3: field `activity.loans_30d`: invalid type"),
            "{e}"
        );
    }

    #[test]
    fn impossible_date_and_unknown_field_are_errors() {
        let e = read("{\"id\":\"a\",\"birth_date\":\"2001-02-30\"}").unwrap_err();
        assert_eq!(e.field.as_deref(), Some("birth_date"));
        let e = read("{\"id\":\"a\",\"nmae\":\"Jane\"}").unwrap_err();
        assert!(e.message.contains("unknown field `nmae`"), "{e}");
    }

    #[test]
    fn malformed_json_names_the_line() {
        let e = read("{\"id\":\"a\"}\n{\"id\": \n").unwrap_err();
        assert_eq!(e.line, 2);
        assert!(e.message.starts_with("EOF while parsing a value"), "{e}");
        let e = read("not json\n").unwrap_err();
        assert_eq!((e.line, e.field.as_deref()), (1, None));
    }
}
