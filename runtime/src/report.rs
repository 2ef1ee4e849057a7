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
//!
//! The labels (`error:`, `warning:`, `hint:`) are coloured here and nowhere else, when the caller
//! asks for it with a [`Style`]: the `wrapkit` CLI does, on a terminal (`--color`, `NO_COLOR`);
//! the stub never does, so what a packed executable prints does not depend on the terminal.
//! Colour goes around the labels only: the messages are the same bytes either way.

use std::error::Error;
use std::fmt::Write as _;

use anstyle::AnsiColor;

use crate::format::path::printable;

/// How to print the labels: plain, or coloured with ANSI escapes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Style {
    pub color: bool,
}

impl Style {
    /// No escapes at all: what the stub prints, and the CLI off a terminal.
    pub const PLAIN: Style = Style { color: false };

    /// `label` (with its colon) as it should appear.
    fn label(self, label: Label) -> String {
        let name = label.text();
        if !self.color {
            return name.to_owned();
        }
        let style = match label {
            Label::Error => AnsiColor::Red.on_default().bold(),
            Label::Warning => AnsiColor::Yellow.on_default().bold(),
            Label::Hint => AnsiColor::Cyan.on_default().bold(),
        };
        format!("{style}{name}{style:#}")
    }
}

#[derive(Debug, Clone, Copy)]
enum Label {
    Error,
    Warning,
    Hint,
}

impl Label {
    fn text(self) -> &'static str {
        match self {
            Label::Error => "error:",
            Label::Warning => "warning:",
            Label::Hint => "hint:",
        }
    }
}

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
    block_styled(messages, hint, Style::PLAIN)
}

/// [`block`], with the labels styled by `style`.
pub fn block_styled(
    messages: impl IntoIterator<Item = String>,
    hint: Option<&str>,
    style: Style,
) -> String {
    let mut out = String::new();
    let mut previous: Option<String> = None;
    for message in messages {
        if previous.as_deref().is_some_and(|p| p.ends_with(&message)) {
            continue;
        }
        if previous.is_none() {
            let _ = writeln!(out, "{} {}", style.label(Label::Error), printable(&message));
        } else {
            let _ = writeln!(out, "  caused by: {}", printable(&message));
        }
        previous = Some(message);
    }
    push_hint(&mut out, hint, style);
    out
}

/// A `warning:` line, and a `hint:` when there is something to do: something went less well
/// than asked, but the command goes on.
pub fn warning(message: &str, hint: Option<&str>, style: Style) -> String {
    let mut out = format!("{} {}\n", style.label(Label::Warning), printable(message));
    push_hint(&mut out, hint, style);
    out
}

fn push_hint(out: &mut String, hint: Option<&str>, style: Style) {
    if let Some(hint) = hint {
        let _ = writeln!(out, "{} {}", style.label(Label::Hint), printable(hint));
    }
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
    fn colour_goes_around_the_labels_only() {
        let messages = || ["cannot read \x1b[31mx".to_owned(), "gone".to_owned()];
        let plain = block(messages(), Some("look"));
        let coloured = block_styled(messages(), Some("look"), Style { color: true });
        assert_eq!(
            coloured,
            "\x1b[1m\x1b[31merror:\x1b[0m cannot read \\x1b[31mx\n  caused by: gone\n\x1b[1m\x1b[36mhint:\x1b[0m look\n"
        );
        assert_eq!(
            plain,
            "error: cannot read \\x1b[31mx\n  caused by: gone\nhint: look\n"
        );
        assert_eq!(
            warning("odd", None, Style { color: true }),
            "\x1b[1m\x1b[33mwarning:\x1b[0m odd\n"
        );
        assert_eq!(
            warning("odd", Some("do"), Style::PLAIN),
            "warning: odd\nhint: do\n"
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
