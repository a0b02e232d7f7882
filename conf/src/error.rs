//! What loading a configuration can report: a [`ConfigError`] that stops start-up, or a
//! [`Warning`] that does not. Both name the file (or environment variable), the line when there
//! is one, and the key as the user wrote it, so `zoo.cfg:7: tickTime: "abc" is not a number`
//! points straight at the mistake.

use std::fmt;
use std::path::PathBuf;

/// A configuration the server must not start with.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The configuration file (or a file it names: `myid`, `dynamicConfigFile`) could not be read.
    #[error("{}: {source}", .file.display())]
    Read {
        /// The file that could not be read.
        file: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The file is not well-formed (TOML syntax, a malformed `\uxxxx` escape in zoo.cfg).
    #[error("{}: {message}", location(.file, *.line))]
    Syntax {
        /// File name as given to the parser.
        file: String,
        /// 1-based line, when known.
        line: Option<usize>,
        /// What is wrong.
        message: String,
    },
    /// A setting has a value ZooKeeper (or geokeeper) cannot run with.
    #[error("{}: {key}: {message}", location(.file, *.line))]
    Invalid {
        /// File name as given to the parser, or the environment variable a `-D` flag came from.
        file: String,
        /// 1-based line, when the key was written in a file.
        line: Option<usize>,
        /// The key as written: `tickTime`, `server.3`, `quorum.servers[1].election_port`,
        /// `-Djute.maxbuffer`.
        key: String,
        /// What is wrong with it.
        message: String,
    },
}

impl ConfigError {
    /// The file (or environment variable) the error is about.
    pub fn file(&self) -> String {
        match self {
            ConfigError::Read { file, .. } => file.display().to_string(),
            ConfigError::Syntax { file, .. } | ConfigError::Invalid { file, .. } => file.clone(),
        }
    }

    /// The 1-based line the error is about, when there is one.
    pub fn line(&self) -> Option<usize> {
        match self {
            ConfigError::Read { .. } => None,
            ConfigError::Syntax { line, .. } | ConfigError::Invalid { line, .. } => *line,
        }
    }

    /// The key the error is about, when there is one.
    pub fn key(&self) -> Option<&str> {
        match self {
            ConfigError::Invalid { key, .. } => Some(key),
            _ => None,
        }
    }
}

/// Something the server can start with but the operator should hear about: an unknown key, a
/// value ZooKeeper silently corrects (`autopurge.snapRetainCount=1` becomes 3), a boolean that
/// is neither `true` nor `false`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning {
    /// File name as given to the parser, or the environment variable a `-D` flag came from.
    pub file: String,
    /// 1-based line, when the key was written in a file.
    pub line: Option<usize>,
    /// The key as written.
    pub key: String,
    /// What the operator should know.
    pub message: String,
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: {}: {}",
            location(&self.file, self.line),
            self.key,
            self.message
        )
    }
}

fn location(file: &str, line: Option<usize>) -> String {
    match line {
        Some(line) => format!("{file}:{line}"),
        None => file.to_string(),
    }
}

/// Where a setting was written: used to build errors and warnings that point at it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Loc {
    pub file: String,
    pub line: Option<usize>,
    pub key: String,
}

impl Loc {
    pub fn new(file: &str, line: Option<usize>, key: &str) -> Loc {
        Loc {
            file: file.to_string(),
            line,
            key: key.to_string(),
        }
    }

    pub fn error(&self, message: impl Into<String>) -> ConfigError {
        ConfigError::Invalid {
            file: self.file.clone(),
            line: self.line,
            key: self.key.clone(),
            message: message.into(),
        }
    }

    pub fn warning(&self, message: impl Into<String>) -> Warning {
        Warning {
            file: self.file.clone(),
            line: self.line,
            key: self.key.clone(),
            message: message.into(),
        }
    }

    /// `zoo.cfg:7` or `zoo.cfg`, for messages that refer to another setting.
    pub fn place(&self) -> String {
        location(&self.file, self.line)
    }
}
