//! One voice for failures: the block the stub and the `wrapkit` CLI print when something goes
//! wrong, built the same way by both.
//!
//! ```text
//! error: /usr/bin/app: cannot materialise the app into /home/me/.cache/wrapkit/bundles-v1/…
//!   caused by: cannot write …/bin/tool
//!   caused by: No space left on device (os error 28)
//! hint: free some space there, or set WRAPKIT_CACHE_DIR to a directory on a filesystem with room
//! ```
//!
//! The first line is the error itself, then one `caused by:` line per source in its chain (a
//! cause whose text the line above already ends with is not repeated), then at most one
//! `hint:`, which the error's own type chooses ([`Hinted`]). Every line is printed with control
//! characters escaped ([`printable`]), so a name or string from an archive can never forge another `error:`
//! line or move the cursor.

use std::error::Error;
use std::fmt::Write as _;

use crate::format::path::printable;

/// An error that knows what the user can do about it.
pub trait Hinted: Error {
    /// The `hint:` line, if there is something to do.
    fn hint(&self) -> Option<String>;
}

/// The block for `err`, whose first line is prefixed with `context: ` when given (the stub
/// names the executable this way).
pub fn render(context: Option<&str>, err: &dyn Error, hint: Option<&str>) -> String {
    let mut messages = vec![match context {
        Some(c) => format!("{c}: {err}"),
        None => err.to_string(),
    }];
    let mut source = err.source();
    while let Some(s) = source {
        messages.push(s.to_string());
        source = s.source();
    }
    block(messages, hint)
}

/// The block for a chain of messages, first the error's own.
pub fn block(messages: impl IntoIterator<Item = String>, hint: Option<&str>) -> String {
    let mut out = String::new();
    let mut previous: Option<String> = None;
    for message in messages {
        if previous.as_deref().is_some_and(|p| p.ends_with(&message)) {
            continue;
        }
        let label = if previous.is_none() {
            "error: "
        } else {
            "  caused by: "
        };
        let _ = writeln!(out, "{label}{}", printable(&message));
        previous = Some(message);
    }
    if let Some(hint) = hint {
        let _ = writeln!(out, "hint: {}", printable(hint));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("cannot write {0}")]
    struct Outer(&'static str, #[source] std::io::Error);

    #[test]
    fn one_block_with_causes_and_a_hint() {
        let err = Outer(
            "x\n\x1b[2Jerror: forged",
            std::io::Error::other("disk full"),
        );
        assert_eq!(
            render(Some("/bin/app"), &err, Some("free some space")),
            "error: /bin/app: cannot write x\\n\\x1b[2Jerror: forged\n  caused by: disk full\nhint: free some space\n"
        );
    }

    #[test]
    fn a_cause_already_said_is_not_repeated() {
        assert_eq!(
            block(
                ["cannot run x: not found".to_owned(), "not found".to_owned()],
                None
            ),
            "error: cannot run x: not found\n"
        );
    }
}
