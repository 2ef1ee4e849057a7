//! What `wrapkit` says on stderr besides its data, and how loudly: set once from the global
//! flags (`-q`, `-v`, `--color`), read by every command, as ripgrep's `messages` module does.
//!
//! Three kinds of lines, and who may silence them:
//!
//! - errors ([`crate::main`], through `wrapkit_runtime::report`): always printed;
//! - notes ([`note!`]: what was packed, extracted, removed) and warnings ([`warning`]): printed
//!   unless `--quiet`;
//! - details ([`detail!`]: where the stub came from, which config and cache were used):
//!   printed only with `--verbose`.
//!
//! The colour choice is resolved here once into a [`Style`] for the error block's labels, so
//! every label wrapkit prints is coloured by the one renderer in `wrapkit_runtime::report`.

use std::sync::atomic::{AtomicBool, Ordering};

use wrapkit_runtime::report::{self, Style};

static QUIET: AtomicBool = AtomicBool::new(false);
static VERBOSE: AtomicBool = AtomicBool::new(false);
static COLOR: AtomicBool = AtomicBool::new(false);

/// Sets what [`note!`], [`detail!`] and [`style`] do for the rest of the process.
pub(crate) fn init(quiet: bool, verbose: bool, color: clap::ColorChoice) {
    QUIET.store(quiet, Ordering::Relaxed);
    VERBOSE.store(verbose && !quiet, Ordering::Relaxed);
    COLOR.store(colors_stderr(color), Ordering::Relaxed);
}

/// Whether `--quiet` was given.
pub(crate) fn quiet() -> bool {
    QUIET.load(Ordering::Relaxed)
}

/// Whether `--verbose` was given (and `--quiet` was not).
pub(crate) fn verbose() -> bool {
    VERBOSE.load(Ordering::Relaxed)
}

/// How to print the labels of an error block or a warning on stderr.
pub(crate) fn style() -> Style {
    Style {
        color: COLOR.load(Ordering::Relaxed),
    }
}

/// A `warning:` (and `hint:`) on stderr, unless `--quiet`.
pub(crate) fn warning(message: &str, hint: Option<&str>) {
    if !quiet() {
        eprint!("{}", report::warning(message, hint, style()));
    }
}

/// `auto` decides as clap does for its own help (anstream): colour when stderr is a terminal
/// whose `TERM` is not `dumb`, unless `NO_COLOR` is set and not empty; `CLICOLOR=0` turns it
/// off and `CLICOLOR_FORCE` on. `always` and `never` are what they say, whatever `NO_COLOR` is
/// (no-color.org: a flag on the command line overrides the variable).
fn colors_stderr(choice: clap::ColorChoice) -> bool {
    let choice = match choice {
        clap::ColorChoice::Auto => anstream::ColorChoice::Auto,
        clap::ColorChoice::Always => anstream::ColorChoice::Always,
        clap::ColorChoice::Never => anstream::ColorChoice::Never,
    };
    let stderr = std::io::stderr();
    let decided = match choice {
        anstream::ColorChoice::Auto => anstream::AutoStream::choice(&stderr),
        chosen => chosen,
    };
    decided != anstream::ColorChoice::Never
}

/// A line on stderr unless `--quiet`: what a command did (`packed …`, `removed …`).
macro_rules! note {
    ($($arg:tt)*) => {
        if !$crate::messages::quiet() {
            eprintln!($($arg)*);
        }
    };
}

/// A line on stderr only with `--verbose`: how a command went about it.
macro_rules! detail {
    ($($arg:tt)*) => {
        if $crate::messages::verbose() {
            eprintln!($($arg)*);
        }
    };
}

pub(crate) use {detail, note};
