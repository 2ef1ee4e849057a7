//! Rules for entry names, shared by the packer (which must never write a name a reader would
//! refuse) and every reader (which must refuse them whatever wrote the archive).
//!
//! A name is relative, `/`-separated UTF-8 with no empty, `.` or `..` component, no backslash,
//! no drive letter, no NUL or control character, and at most [`MAX_NAME_LEN`] bytes. Names are
//! rejected, never repaired: an archive that needs repair was not written by us.

use unicode_normalization::UnicodeNormalization;

/// Longest name accepted, in bytes (zip allows 65535; no filesystem takes more than 4096).
pub const MAX_NAME_LEN: usize = 4096;

/// Why a name was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("the name is empty")]
    Empty,
    #[error("the name is longer than {MAX_NAME_LEN} bytes")]
    TooLong,
    #[error("the name is absolute")]
    Absolute,
    #[error("the name contains a backslash")]
    Backslash,
    #[error("the name starts with a drive letter")]
    DriveLetter,
    #[error("the name contains a NUL or control character")]
    ControlCharacter,
    #[error("the name has an empty, `.` or `..` component")]
    BadComponent,
}

/// Checks one entry name (without a trailing slash).
pub fn validate(name: &str) -> Result<(), NameError> {
    if name.is_empty() {
        return Err(NameError::Empty);
    }
    if name.len() > MAX_NAME_LEN {
        return Err(NameError::TooLong);
    }
    if name.starts_with('/') {
        return Err(NameError::Absolute);
    }
    if name.contains('\\') {
        return Err(NameError::Backslash);
    }
    let b = name.as_bytes();
    if b.len() >= 2 && b[0].is_ascii_alphabetic() && b[1] == b':' {
        return Err(NameError::DriveLetter);
    }
    if name.chars().any(char::is_control) {
        return Err(NameError::ControlCharacter);
    }
    if name
        .split('/')
        .any(|c| c.is_empty() || c == "." || c == "..")
    {
        return Err(NameError::BadComponent);
    }
    Ok(())
}

/// The key under which two names collide on some filesystem: NFC-normalised and lowercased.
/// Two entries with the same key cannot both be extracted on macOS or Windows, and are the
/// raw material of "which one did you mean" attacks.
pub fn collision_key(name: &str) -> String {
    name.nfc().collect::<String>().to_lowercase()
}

/// Whether `name` is wrapkit's own (under `.wrapkit/`).
pub fn is_reserved(name: &str) -> bool {
    name == super::RESERVED_DIR || name.starts_with(".wrapkit/")
}

/// The parent directory of `name` ("" for a top-level name).
pub fn parent(name: &str) -> &str {
    name.rsplit_once('/').map_or("", |(p, _)| p)
}

/// Resolves a symlink target relative to the directory holding the link, lexically. Returns
/// `None` when the target is absolute or climbs out of the archive.
pub fn resolve_link(link_name: &str, target: &str) -> Option<String> {
    if target.starts_with('/') {
        return None;
    }
    normalise(&format!("{}/{target}", parent(link_name)))
}

/// Lexical normalisation of a `/`-separated path relative to the archive root: empty and `.`
/// components dropped, `..` applied. `None` when it climbs above the root.
pub fn normalise(path: &str) -> Option<String> {
    let mut parts: Vec<&str> = Vec::new();
    for c in path.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            c => parts.push(c),
        }
    }
    Some(parts.join("/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_names_are_rejected() {
        for bad in [
            "",
            "/etc/x",
            "../x",
            "a/../../x",
            "a/./b",
            "a//b",
            "a/",
            "C:\\x",
            "C:x",
            "..\\x",
            "a\0b",
            "a\nb",
            "a\x7fb",
            ".",
            "..",
        ] {
            assert!(validate(bad).is_err(), "{bad:?} accepted");
        }
        for good in ["a", "a/b.lua", ".hidden", "a..b", "ünïcode/名前", "ab:c"] {
            assert_eq!(validate(good), Ok(()), "{good:?} refused");
        }
    }

    #[test]
    fn collisions_fold_case_and_normal_form() {
        assert_eq!(collision_key("README"), collision_key("readme"));
        assert_eq!(collision_key("caf\u{e9}"), collision_key("cafe\u{301}"));
        assert_ne!(collision_key("a"), collision_key("b"));
    }

    #[test]
    fn links_resolve_lexically_inside_the_tree() {
        assert_eq!(resolve_link("a/b/link", "../c").as_deref(), Some("a/c"));
        assert_eq!(resolve_link("link", "x/./y").as_deref(), Some("x/y"));
        assert_eq!(resolve_link("a/link", "../../x"), None);
        assert_eq!(resolve_link("a/link", "/etc/passwd"), None);
    }
}
