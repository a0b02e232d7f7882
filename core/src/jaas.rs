//! JAAS login configuration files, the format ZooKeeper's SASL users live in
//! (`java.security.auth.login.config`), read the way the JDK's `ConfigFile` reads them:
//!
//! ```text
//! // comment            /* comment */
//! Server {
//!     org.apache.zookeeper.server.auth.DigestLoginModule required
//!     user_super="adminsecret"
//!     user_bob="bobsecret";
//! };
//! Client { ... };
//! ```
//!
//! A file holds named sections; a section holds login-module entries, each a class name,
//! a control flag (`required`, `requisite`, `sufficient`, `optional`, any case) and
//! `key=value` options, ended by `;`. Tokens follow `java.io.StreamTokenizer` as the JDK
//! sets it up, so a file Java accepts parses here the same way and one Java refuses is
//! refused: words are letters, digits, `.`, `-`, `_`, `$`, `*` (not starting with a digit,
//! `.` or `-`, which start a number, refused where a value is expected); strings are
//! double-quoted, with backslash escapes, and end at the line's end; `//`, `/* */` and a
//! lone `/` start comments. `${name}` in option values is expanded from properties, as
//! `PropertyExpander` does (`${/}` is the file separator).

use std::path::Path;

/// A JAAS control flag (`AppConfigurationEntry.LoginModuleControlFlag`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ControlFlag {
    Required,
    Requisite,
    Sufficient,
    Optional,
}

/// One login-module entry of a section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoginEntry {
    pub module: String,
    pub flag: ControlFlag,
    /// In file order. Java keeps them in a map, so a repeated key keeps its last value;
    /// [`LoginEntry::option`] answers that way.
    pub options: Vec<(String, String)>,
}

impl LoginEntry {
    pub fn option(&self, key: &str) -> Option<&str> {
        self.options
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// A parsed JAAS file: its sections in file order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JaasConfig {
    pub sections: Vec<(String, Vec<LoginEntry>)>,
}

impl JaasConfig {
    /// The entries of the section `name` (names are case-sensitive).
    pub fn section(&self, name: &str) -> Option<&[LoginEntry]> {
        self.sections
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, e)| e.as_slice())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum JaasError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("Configuration Error: Line {line}: {message}")]
    Syntax { line: usize, message: String },
}

/// Reads and parses the file at `path`; `property` resolves `${name}` in option values.
pub fn load(
    path: &Path,
    property: &dyn Fn(&str) -> Option<String>,
) -> Result<JaasConfig, JaasError> {
    let text = std::fs::read(path).map_err(|source| JaasError::Io {
        path: path.display().to_string(),
        source,
    })?;
    parse(&String::from_utf8_lossy(&text), property)
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Word(String),
    /// A string in the given quote character.
    Quoted(char, String),
    Number(String),
    /// Any other single character: `{ } ; =` and the like.
    Char(char),
    Eof,
}

impl Tok {
    fn describe(&self) -> String {
        match self {
            Tok::Word(w) | Tok::Number(w) => w.clone(),
            Tok::Quoted(q, s) => format!("{q}{s}{q}"),
            Tok::Char(c) => c.to_string(),
            Tok::Eof => "end of file".into(),
        }
    }
}

struct Lexer<'a> {
    chars: std::iter::Peekable<std::str::Chars<'a>>,
    line: usize,
}

fn is_word_start(c: char) -> bool {
    c.is_ascii_alphabetic() || matches!(c, '$' | '_' | '*') || (c as u32) >= 0xA0
}

fn is_word_part(c: char) -> bool {
    is_word_start(c) || c.is_ascii_digit() || matches!(c, '.' | '-')
}

impl Lexer<'_> {
    fn bump(&mut self) -> Option<char> {
        let c = self.chars.next();
        if c == Some('\n') {
            self.line += 1;
        }
        c
    }

    fn skip_line(&mut self) {
        while let Some(&c) = self.chars.peek() {
            if c == '\n' || c == '\r' {
                return;
            }
            self.chars.next();
        }
    }

    fn next(&mut self) -> Tok {
        loop {
            let Some(&c) = self.chars.peek() else {
                return Tok::Eof;
            };
            if c <= ' ' {
                self.bump();
                continue;
            }
            if c == '/' {
                self.chars.next();
                if self.chars.peek() == Some(&'*') {
                    self.chars.next();
                    let mut prev = '\0';
                    while let Some(c) = self.bump() {
                        if prev == '*' && c == '/' {
                            break;
                        }
                        prev = c;
                    }
                } else {
                    // `//` and, `/` being StreamTokenizer's comment character, a lone `/`.
                    self.skip_line();
                }
                continue;
            }
            if c == '"' || c == '\'' {
                self.chars.next();
                return Tok::Quoted(c, self.quoted(c));
            }
            if c.is_ascii_digit() || c == '.' || c == '-' {
                self.chars.next();
                if c == '-'
                    && !self
                        .chars
                        .peek()
                        .is_some_and(|n| n.is_ascii_digit() || *n == '.')
                {
                    return Tok::Char('-');
                }
                let mut s = c.to_string();
                while let Some(&n) = self.chars.peek() {
                    if !(n.is_ascii_digit() || n == '.') {
                        break;
                    }
                    s.push(n);
                    self.chars.next();
                }
                return Tok::Number(s);
            }
            if is_word_start(c) {
                let mut s = String::new();
                while let Some(&n) = self.chars.peek() {
                    if !is_word_part(n) {
                        break;
                    }
                    s.push(n);
                    self.chars.next();
                }
                return Tok::Word(s);
            }
            self.chars.next();
            return Tok::Char(c);
        }
    }

    /// The rest of a quoted string: up to the closing quote, the end of the line or of
    /// the file, with C-like escapes (`\n`, `\t`, octal, and `\x` for any other `x`).
    fn quoted(&mut self, quote: char) -> String {
        let mut s = String::new();
        while let Some(&c) = self.chars.peek() {
            if c == '\n' || c == '\r' {
                break;
            }
            self.chars.next();
            if c == quote {
                break;
            }
            if c != '\\' {
                s.push(c);
                continue;
            }
            let Some(e) = self.chars.next() else {
                break;
            };
            let v = match e {
                'a' => '\u{7}',
                'b' => '\u{8}',
                'f' => '\u{c}',
                'n' => '\n',
                'r' => '\r',
                't' => '\t',
                'v' => '\u{b}',
                '0'..='7' => {
                    let mut v = e as u32 - '0' as u32;
                    let max_digits = if e <= '3' { 3 } else { 2 };
                    for _ in 1..max_digits {
                        match self.chars.peek() {
                            Some(&d @ '0'..='7') => {
                                v = v * 8 + (d as u32 - '0' as u32);
                                self.chars.next();
                            }
                            _ => break,
                        }
                    }
                    char::from_u32(v).unwrap_or('\u{fffd}')
                }
                other => other,
            };
            s.push(v);
        }
        s
    }
}

struct Parser<'a> {
    lex: Lexer<'a>,
    look: Tok,
    property: &'a dyn Fn(&str) -> Option<String>,
}

impl Parser<'_> {
    fn err(&self, message: String) -> JaasError {
        JaasError::Syntax {
            line: self.lex.line,
            message,
        }
    }

    fn advance(&mut self) {
        self.look = self.lex.next();
    }

    /// A word or a double-quoted string (`ConfigFile.match` for names and values).
    fn text(&mut self, expect: &str) -> Result<String, JaasError> {
        match &self.look {
            Tok::Word(s) | Tok::Quoted('"', s) => {
                let s = s.clone();
                self.advance();
                Ok(s)
            }
            Tok::Eof => Err(self.err(format!("expected [{expect}], read [end of file]"))),
            other => Err(self.err(format!("expected [{expect}], found [{}]", other.describe()))),
        }
    }

    fn punct(&mut self, c: char) -> Result<(), JaasError> {
        if self.look == Tok::Char(c) {
            self.advance();
            Ok(())
        } else {
            Err(self.err(format!("expected [{c}], found [{}]", self.look.describe())))
        }
    }

    fn section(&mut self) -> Result<(String, Vec<LoginEntry>), JaasError> {
        let name = self.text("application name")?;
        self.punct('{')?;
        let mut entries = Vec::new();
        while self.look != Tok::Char('}') {
            let module = self.text("module class name")?;
            let flag = self.text("controlFlag")?;
            let flag = match flag.to_ascii_uppercase().as_str() {
                "REQUIRED" => ControlFlag::Required,
                "REQUISITE" => ControlFlag::Requisite,
                "SUFFICIENT" => ControlFlag::Sufficient,
                "OPTIONAL" => ControlFlag::Optional,
                _ => return Err(self.err(format!("Invalid control flag, {flag}"))),
            };
            let mut options = Vec::new();
            while self.look != Tok::Char(';') {
                let key = self.text("option key")?;
                self.punct('=')?;
                let value = self.text("option value")?;
                let value = self.expand(&value)?;
                options.push((key, value));
            }
            self.advance();
            entries.push(LoginEntry {
                module,
                flag,
                options,
            });
        }
        self.punct('}')?;
        self.punct(';')?;
        Ok((name, entries))
    }

    /// `${name}` → the property's value; `${/}` → `/`.
    fn expand(&self, value: &str) -> Result<String, JaasError> {
        let mut out = String::with_capacity(value.len());
        let mut rest = value;
        while let Some(start) = rest.find("${") {
            out.push_str(&rest[..start]);
            let after = &rest[start + 2..];
            let Some(end) = after.find('}') else {
                // No closing brace: the rest is literal.
                out.push_str(&rest[start..]);
                return Ok(out);
            };
            let name = &after[..end];
            if name == "/" {
                out.push('/');
            } else {
                match (self.property)(name) {
                    Some(v) => out.push_str(&v),
                    None => {
                        return Err(self.err(format!("unable to expand property {name}")));
                    }
                }
            }
            rest = &after[end + 1..];
        }
        out.push_str(rest);
        Ok(out)
    }
}

/// Parses JAAS configuration text; `property` resolves `${name}` in option values.
pub fn parse(
    text: &str,
    property: &dyn Fn(&str) -> Option<String>,
) -> Result<JaasConfig, JaasError> {
    let mut p = Parser {
        lex: Lexer {
            chars: text.chars().peekable(),
            line: 1,
        },
        look: Tok::Eof,
        property,
    };
    p.advance();
    let mut cfg = JaasConfig::default();
    while p.look != Tok::Eof {
        let (name, entries) = p.section()?;
        if cfg.section(&name).is_some() {
            return Err(p.err(format!("Can not specify multiple entries for {name}")));
        }
        cfg.sections.push((name, entries));
    }
    Ok(cfg)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_props(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn zookeepers_server_and_client_sections() {
        let text = r#"
            // The users SASL clients log in as.
            Server {
                org.apache.zookeeper.server.auth.DigestLoginModule required
                user_super="adminsecret"
                /* bob has a quote in his password */
                user_bob="bob\"secret";
            };
            Client{org.apache.zookeeper.server.auth.DigestLoginModule REQUIRED username=bob password="x";};
        "#;
        let cfg = parse(text, &no_props).unwrap();
        let server = cfg.section("Server").unwrap();
        assert_eq!(server.len(), 1);
        assert_eq!(
            server[0].module,
            "org.apache.zookeeper.server.auth.DigestLoginModule"
        );
        assert_eq!(server[0].flag, ControlFlag::Required);
        assert_eq!(server[0].option("user_super"), Some("adminsecret"));
        assert_eq!(server[0].option("user_bob"), Some("bob\"secret"));
        let client = cfg.section("Client").unwrap();
        assert_eq!(client[0].option("username"), Some("bob"));
        assert_eq!(cfg.section("server"), None, "names are case-sensitive");
    }

    #[test]
    fn several_entries_flags_comments_and_empty_sections() {
        let text = "A { m.One optional; m.Two Sufficient k=v k=w; }; # \n";
        // `#` is not a comment: Java refuses it as an application name.
        assert!(parse(text, &no_props).is_err());
        let text = "A { m.One optional; m.Two Sufficient k=v k=w; }; / lone slash comment\nB { };";
        let cfg = parse(text, &no_props).unwrap();
        let a = cfg.section("A").unwrap();
        assert_eq!(a.len(), 2);
        assert_eq!(a[0].flag, ControlFlag::Optional);
        assert_eq!(a[1].flag, ControlFlag::Sufficient);
        assert_eq!(a[1].option("k"), Some("w"), "the last value of a key wins");
        assert_eq!(cfg.section("B"), Some(&[][..]));
    }

    #[test]
    fn syntax_errors_name_the_line() {
        let cases = [
            ("Server {\n m.X required\n a=1;\n};", 3, "found [1]"),
            ("Server {\n m.X mandatory;\n};", 2, "Invalid control flag"),
            ("Server {\n m.X required a='b';\n};", 2, "found ['b']"),
            ("Server {\n m.X required a=\"b\"\n", 3, "end of file"),
            (
                "S { m.X required; };\nS { m.Y required; };",
                2,
                "multiple entries",
            ),
            ("S { m.X required; }", 1, "expected [;]"),
        ];
        for (text, line, what) in cases {
            match parse(text, &no_props) {
                Err(JaasError::Syntax { line: l, message }) => {
                    assert_eq!(l, line, "{text:?}: {message}");
                    assert!(message.contains(what), "{text:?}: {message}");
                }
                other => panic!("{text:?}: {other:?}"),
            }
        }
    }

    #[test]
    fn quoted_strings_escape_and_end_at_the_line_end() {
        let cfg = parse(
            "S { m.X required a=\"t\\tab\\101\" b=\"open\n c=\"\"; };",
            &no_props,
        )
        .unwrap();
        let e = &cfg.section("S").unwrap()[0];
        assert_eq!(e.option("a"), Some("t\tabA"));
        assert_eq!(e.option("b"), Some("open"));
        assert_eq!(e.option("c"), Some(""));
    }

    #[test]
    fn properties_expand_in_values() {
        let props = |n: &str| (n == "user.home").then(|| "/home/zk".to_string());
        let cfg = parse(
            "S { m.X required keyTab=\"${user.home}${/}zk.keytab\" plain=\"a$b\"; };",
            &props,
        )
        .unwrap();
        let e = &cfg.section("S").unwrap()[0];
        assert_eq!(e.option("keyTab"), Some("/home/zk/zk.keytab"));
        assert_eq!(e.option("plain"), Some("a$b"));
        assert!(parse("S { m.X required a=\"${nope}\"; };", &props).is_err());
    }
}
