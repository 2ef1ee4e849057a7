//! Rules for entry names, shared by the packer (which must never write a name a reader would
//! refuse) and every reader (which must refuse them whatever wrote the archive).
//!
//! A name is relative, `/`-separated UTF-8 with no empty, `.` or `..` component, no backslash,
//! no drive letter, no NUL or control character, and at most [`MAX_NAME_LEN`] bytes. Names are
//! rejected, never repaired: an archive that needs repair was not written by us.

use std::borrow::Cow;
use std::fmt::Write as _;

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
    let b = name.as_bytes();
    if b.len() >= 2 && b[0].is_ascii_alphabetic() && b[1] == b':' && !b.contains(&b'\\') {
        return Err(NameError::DriveLetter);
    }
    // One pass over the bytes (every name of every archive comes through here); the reasons
    // keep their precedence: backslash, then control character, then component.
    let (mut backslash, mut control, mut maybe_c1, mut bad_component) =
        (false, false, false, false);
    let mut start = 0;
    for (i, &c) in b.iter().enumerate() {
        match c {
            b'\\' => backslash = true,
            b'/' => {
                bad_component |= matches!(&b[start..i], b"" | b"." | b"..");
                start = i + 1;
            }
            0..0x20 | 0x7f => control = true,
            // C1 controls are `0xc2 0x80..=0x9f` in UTF-8.
            0xc2 => maybe_c1 = true,
            _ => {}
        }
    }
    bad_component |= matches!(&b[start..], b"" | b"." | b"..");
    if backslash {
        return Err(NameError::Backslash);
    }
    if control || (maybe_c1 && name.chars().any(char::is_control)) {
        return Err(NameError::ControlCharacter);
    }
    if bad_component {
        return Err(NameError::BadComponent);
    }
    Ok(())
}

/// Whether `s` holds a C0 control, DEL or a C1 control (bytes first, chars only if needed).
fn has_control(s: &str) -> bool {
    s.as_bytes()
        .iter()
        .any(|&b| b < 0x20 || b == 0x7f || b == 0xc2)
        && s.chars().any(char::is_control)
}

/// The key under which two names collide on some filesystem: NFC-normalised and lowercased.
/// Two entries with the same key cannot both be extracted on macOS or Windows, and are the
/// raw material of "which one did you mean" attacks.
pub fn collision_key(name: &str) -> String {
    if name.is_ascii() {
        // NFC leaves ASCII as it is; most names are ASCII, and the validator keys every one.
        return name.to_ascii_lowercase();
    }
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

/// `s` safe to print on a terminal or in a log: C0 controls, DEL and C1 controls are escaped
/// (`\n`, `\r`, `\t`, `\x1b`, `\u{9b}`), so a string taken from an archive can neither rewrite
/// the terminal nor forge a line of output. Everything else is kept as it is.
pub fn printable(s: &str) -> Cow<'_, str> {
    let needs_escape = |c: char| c.is_control();
    if !has_control(s) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x80 && needs_escape(c) => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c if needs_escape(c) => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    Cow::Owned(out)
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
    fn printable_escapes_every_control_character() {
        assert!(matches!(printable("plain ünï/名前"), Cow::Borrowed(_)));
        assert_eq!(
            printable("evil\x1b[2J\rerror: forged\n"),
            "evil\\x1b[2J\\rerror: forged\\n"
        );
        assert_eq!(
            printable("\0\t\x7f\u{9b}\u{85}"),
            "\\x00\\t\\x7f\\u{9b}\\u{85}"
        );
        for c in (0u32..0x20).chain(0x7f..0xa0).filter_map(char::from_u32) {
            assert!(!printable(&c.to_string()).chars().any(char::is_control));
        }
    }
}
