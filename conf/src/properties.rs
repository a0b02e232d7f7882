//! A reader for the `java.util.Properties` text format, which is what zoo.cfg is: ZooKeeper
//! loads it with `Properties.load` before `QuorumPeerConfig.parseProperties` sees a key.
//!
//! The rules matched (from the `Properties.load(Reader)` contract):
//! * lines end with `\n`, `\r` or `\r\n`; a line whose last character is an unescaped `\`
//!   continues on the next one, whose leading white space is dropped;
//! * a line whose first non-blank character is `#` or `!` is a comment (and never continues);
//! * the key runs to the first unescaped `=`, `:` or white space (space, tab, form feed); then
//!   white space, at most one `=` or `:`, and white space are skipped; the rest is the value,
//!   trailing white space included (ZooKeeper trims it afterwards);
//! * `\t`, `\n`, `\r`, `\f` and `\u` plus four hex digits are escapes, and `\` before any other character stands
//!   for that character.
//!
//! One deliberate difference: Java reads the bytes as ISO-8859-1. We take the text as UTF-8
//! (identical for ASCII) and only fall back to ISO-8859-1 when it is not valid UTF-8, so a
//! UTF-8 `dataDir` means what its author meant.

/// One `key=value` pair, with the line its logical line starts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Entry {
    pub key: String,
    pub value: String,
    pub line: usize,
}

/// A malformed `\uxxxx` escape: the one input `Properties.load` rejects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SyntaxError {
    pub line: usize,
    pub message: String,
}

/// Decodes file bytes as UTF-8, or ISO-8859-1 (what Java assumes) when they are not UTF-8.
pub(crate) fn decode(bytes: &[u8]) -> String {
    match std::str::from_utf8(bytes) {
        Ok(text) => text.to_string(),
        Err(_) => bytes.iter().map(|&b| char::from(b)).collect(),
    }
}

fn is_blank(c: char) -> bool {
    c == ' ' || c == '\t' || c == '\x0c'
}

/// Splits text into natural lines, numbered from 1, honouring `\n`, `\r` and `\r\n`.
fn natural_lines(text: &str) -> Vec<(usize, &str)> {
    let mut lines = Vec::new();
    let bytes = text.as_bytes();
    let mut start = 0;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\n' => {
                lines.push(&text[start..i]);
                start = i + 1;
            }
            b'\r' => {
                lines.push(&text[start..i]);
                if bytes.get(i + 1) == Some(&b'\n') {
                    i += 1;
                }
                start = i + 1;
            }
            _ => {}
        }
        i += 1;
    }
    if start < text.len() {
        lines.push(&text[start..]);
    }
    lines
        .into_iter()
        .enumerate()
        .map(|(n, l)| (n + 1, l))
        .collect()
}

fn ends_with_odd_backslashes(s: &str) -> bool {
    s.chars().rev().take_while(|&c| c == '\\').count() % 2 == 1
}

/// Parses the whole text into entries, in file order (duplicates kept; the caller decides).
pub(crate) fn parse(text: &str) -> Result<Vec<Entry>, SyntaxError> {
    let lines = natural_lines(text);
    let mut entries = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let (line_no, raw) = lines[i];
        let first = raw.trim_start_matches(is_blank);
        if first.is_empty() || first.starts_with('#') || first.starts_with('!') {
            i += 1;
            continue;
        }
        let mut logical = String::new();
        let mut current = first;
        loop {
            i += 1;
            if ends_with_odd_backslashes(current) {
                logical.push_str(&current[..current.len() - 1]);
                match lines.get(i) {
                    Some((_, next)) => current = next.trim_start_matches(is_blank),
                    // A backslash on the last line of the file is dropped, as Java does.
                    None => break,
                }
            } else {
                logical.push_str(current);
                break;
            }
        }
        let (key, value) = split_key_value(&logical);
        entries.push(Entry {
            key: unescape(key).map_err(|message| SyntaxError {
                line: line_no,
                message,
            })?,
            value: unescape(value).map_err(|message| SyntaxError {
                line: line_no,
                message,
            })?,
            line: line_no,
        });
    }
    Ok(entries)
}

/// Splits a logical line into its raw (still escaped) key and value.
fn split_key_value(line: &str) -> (&str, &str) {
    let mut key_end = line.len();
    let mut value_start = line.len();
    let mut has_separator = false;
    let mut preceding_backslash = false;
    for (idx, c) in line.char_indices() {
        if !preceding_backslash && (c == '=' || c == ':') {
            key_end = idx;
            value_start = idx + 1;
            has_separator = true;
            break;
        }
        if !preceding_backslash && is_blank(c) {
            key_end = idx;
            value_start = idx + c.len_utf8();
            break;
        }
        preceding_backslash = c == '\\' && !preceding_backslash;
    }
    let rest = &line[value_start..];
    let mut skip = 0;
    for c in rest.chars() {
        if is_blank(c) {
            skip += c.len_utf8();
        } else if !has_separator && (c == '=' || c == ':') {
            has_separator = true;
            skip += 1;
        } else {
            break;
        }
    }
    (&line[..key_end], &rest[skip..])
}

/// Applies `Properties` escapes. Builds UTF-16 code units so that a surrogate pair written as
/// two `\u` escapes becomes one character, as in Java.
fn unescape(s: &str) -> Result<String, String> {
    if !s.contains('\\') {
        return Ok(s.to_string());
    }
    let mut units: Vec<u16> = Vec::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            let mut buf = [0u16; 2];
            units.extend_from_slice(c.encode_utf16(&mut buf));
            continue;
        }
        let Some(escaped) = chars.next() else {
            break;
        };
        match escaped {
            'u' => {
                let mut code: u32 = 0;
                for _ in 0..4 {
                    let digit = chars
                        .next()
                        .and_then(|d| d.to_digit(16))
                        .ok_or_else(|| "Malformed \\uxxxx encoding.".to_string())?;
                    code = code * 16 + digit;
                }
                // Four hex digits always fit a UTF-16 code unit.
                units.push(code as u16);
            }
            't' => units.push(u16::from(b'\t')),
            'r' => units.push(u16::from(b'\r')),
            'n' => units.push(u16::from(b'\n')),
            'f' => units.push(0x0c),
            other => {
                let mut buf = [0u16; 2];
                units.extend_from_slice(other.encode_utf16(&mut buf));
            }
        }
    }
    Ok(String::from_utf16_lossy(&units))
}

/// `String.trim()` as Java defines it: strips every character up to and including U+0020 from
/// both ends (ZooKeeper trims every key and value it reads).
pub(crate) fn java_trim(s: &str) -> &str {
    s.trim_matches(|c: char| c <= ' ')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(text: &str) -> Vec<(String, String, usize)> {
        parse(text)
            .expect("parses")
            .into_iter()
            .map(|e| (e.key, e.value, e.line))
            .collect()
    }

    fn kv(k: &str, v: &str, line: usize) -> (String, String, usize) {
        (k.to_string(), v.to_string(), line)
    }

    #[test]
    fn separators_equals_colon_and_whitespace() {
        assert_eq!(
            pairs("a=1\nb: 2\nc 3\nd\t=\t4\ne   :   5\n"),
            vec![
                kv("a", "1", 1),
                kv("b", "2", 2),
                kv("c", "3", 3),
                kv("d", "4", 4),
                kv("e", "5", 5)
            ]
        );
    }

    #[test]
    fn only_one_separator_is_consumed() {
        assert_eq!(
            pairs("a==1\nb = :2\nc:=3\n"),
            vec![kv("a", "=1", 1), kv("b", ":2", 2), kv("c", "=3", 3)]
        );
    }

    #[test]
    fn comments_and_blank_lines_are_skipped() {
        assert_eq!(
            pairs("# comment\n! also a comment\n\n   \n  # indented comment\nk=v\n"),
            vec![kv("k", "v", 6)]
        );
    }

    #[test]
    fn key_without_value() {
        assert_eq!(
            pairs("alone\nempty=\n"),
            vec![kv("alone", "", 1), kv("empty", "", 2)]
        );
    }

    #[test]
    fn trailing_whitespace_is_kept_until_zookeeper_trims_it() {
        assert_eq!(pairs("k = v  \n"), vec![kv("k", "v  ", 1)]);
        assert_eq!(java_trim(" v \t"), "v");
    }

    #[test]
    fn continuation_lines() {
        assert_eq!(
            pairs("list=a,\\\n    b,\\\n    c\nnext=1\n"),
            vec![kv("list", "a,b,c", 1), kv("next", "1", 4)]
        );
        // An even number of backslashes does not continue the line.
        assert_eq!(
            pairs("p=c:\\\\\nq=1"),
            vec![kv("p", "c:\\", 1), kv("q", "1", 2)]
        );
        // A comment line never continues.
        assert_eq!(pairs("# x \\\nk=v"), vec![kv("k", "v", 2)]);
        // A backslash at the very end of the file is dropped.
        assert_eq!(pairs("k=v\\"), vec![kv("k", "v", 1)]);
    }

    #[test]
    fn escapes() {
        assert_eq!(
            pairs("a\\=b=c\\td\nk\\ ey=\\u0041\\x\n"),
            vec![kv("a=b", "c\td", 1), kv("k ey", "Ax", 2)]
        );
    }

    #[test]
    fn malformed_unicode_escape_is_an_error() {
        assert_eq!(
            parse("ok=1\nbad=\\u12G4\n"),
            Err(SyntaxError {
                line: 2,
                message: "Malformed \\uxxxx encoding.".to_string()
            })
        );
    }

    #[test]
    fn crlf_and_cr_line_endings() {
        assert_eq!(
            pairs("a=1\r\nb=2\rc=3"),
            vec![kv("a", "1", 1), kv("b", "2", 2), kv("c", "3", 3)]
        );
    }

    #[test]
    fn latin1_fallback() {
        assert_eq!(decode(b"dataDir=/d\xe9"), "dataDir=/d\u{e9}");
        assert_eq!(decode("dataDir=/dé".as_bytes()), "dataDir=/dé");
    }
}
