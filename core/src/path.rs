//! Znode path validation with ZooKeeper's rules and messages (`PathUtils.validatePath`).
//! Positions in messages count UTF-16 code units, as Java's do.

/// Why a path is invalid, worded as ZooKeeper words it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidPath(pub String);

pub fn validate_path(path: &str) -> Result<(), InvalidPath> {
    if path.is_empty() {
        return Err(InvalidPath("Path length must be > 0".into()));
    }
    if !path.starts_with('/') {
        return Err(InvalidPath("Path must start with / character".into()));
    }
    if path.len() == 1 {
        return Ok(());
    }
    if path.ends_with('/') {
        return Err(InvalidPath("Path must not end with / character".into()));
    }
    // Work on UTF-16 units so that indexes and the surrogate rule match Java.
    let units: Vec<u16> = path.encode_utf16().collect();
    let mut reason = None;
    let mut last = b'/' as u16;
    for i in 1..units.len() {
        let c = units[i];
        let next_is_end_or_slash = i + 1 == units.len() || units[i + 1] == b'/' as u16;
        if c == 0 {
            reason = Some(format!("null character not allowed @{i}"));
        } else if c == b'/' as u16 && last == b'/' as u16 {
            reason = Some(format!("empty node name specified @{i}"));
        } else if c == b'.' as u16 && last == b'.' as u16 {
            if units[i - 2] == b'/' as u16 && next_is_end_or_slash {
                reason = Some(format!("relative paths not allowed @{i}"));
            }
        } else if c == b'.' as u16 {
            if units[i - 1] == b'/' as u16 && next_is_end_or_slash {
                reason = Some(format!("relative paths not allowed @{i}"));
            }
        } else if (0x01..=0x1f).contains(&c)
            || (0x7f..=0x9f).contains(&c)
            || (0xd800..=0xf8ff).contains(&c)
            || c >= 0xfff0
        {
            reason = Some(format!("invalid character @{i}"));
        }
        if reason.is_some() {
            break;
        }
        last = c;
    }
    match reason {
        Some(r) => Err(InvalidPath(format!(
            "Invalid path string \"{path}\" caused by {r}"
        ))),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zookeeper_path_rules() {
        for ok in ["/", "/a", "/a/b", "/a.b", "/..a", "/a/...", "/ü", "/a b"] {
            assert!(validate_path(ok).is_ok(), "{ok}");
        }
        let msg = |p: &str| validate_path(p).unwrap_err().0;
        assert_eq!(msg(""), "Path length must be > 0");
        assert_eq!(msg("a"), "Path must start with / character");
        assert_eq!(msg("/a/"), "Path must not end with / character");
        assert_eq!(
            msg("/a//b"),
            "Invalid path string \"/a//b\" caused by empty node name specified @3"
        );
        assert_eq!(
            msg("/a/./b"),
            "Invalid path string \"/a/./b\" caused by relative paths not allowed @3"
        );
        assert_eq!(
            msg("/a/.."),
            "Invalid path string \"/a/..\" caused by relative paths not allowed @4"
        );
        assert_eq!(
            msg("/a\u{1}"),
            "Invalid path string \"/a\u{1}\" caused by invalid character @2"
        );
        assert_eq!(
            msg("/a\0b"),
            "Invalid path string \"/a\0b\" caused by null character not allowed @2"
        );
        assert!(
            validate_path("/\u{1F600}").is_err(),
            "surrogate pairs are refused"
        );
    }
}
