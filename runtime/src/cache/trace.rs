//! `WRAPKIT_DEBUG=1`: the runtime says on stderr what it decided and how long each step took.
//!
//! Off by default, and then free: every message is built by a closure that is never called.

use std::time::Instant;

/// The environment variable that turns tracing on (any value but empty or `0`).
pub const ENV_DEBUG: &str = "WRAPKIT_DEBUG";

/// A stopwatch that prints `wrapkit: [   0.123 ms] message` lines when enabled.
#[derive(Debug, Clone)]
pub struct Trace {
    start: Option<Instant>,
}

impl Trace {
    /// On when `WRAPKIT_DEBUG` is set to something other than empty or `0` (never in a
    /// privileged process: see [`crate::environ`]).
    pub fn from_env() -> Trace {
        let on = crate::environ::var(ENV_DEBUG).is_some_and(|v| !v.is_empty() && v != "0");
        Trace {
            start: on.then(Instant::now),
        }
    }

    /// A trace that prints nothing.
    pub fn off() -> Trace {
        Trace { start: None }
    }

    pub fn enabled(&self) -> bool {
        self.start.is_some()
    }

    /// Prints one line (if enabled), stamped with the time since the trace started.
    pub fn say(&self, message: impl FnOnce() -> String) {
        if let Some(start) = self.start {
            let ms = start.elapsed().as_secs_f64() * 1e3;
            eprintln!("wrapkit: [{ms:8.3} ms] {}", message());
        }
    }
}
