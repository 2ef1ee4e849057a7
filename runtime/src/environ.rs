//! The runtime's view of its environment, and whether it may trust it at all.
//!
//! The runtime reads few variables (`WRAPKIT_CACHE_DIR`, `CACHE_DIRECTORY`, `XDG_CACHE_HOME`,
//! `HOME`, `WRAPKIT_DEBUG`), and all through [`var`]. In a **privileged** process — one the kernel
//! started in secure-execution mode (`AT_SECURE`: a setuid or setgid file, one with file
//! capabilities, or an exec whose effective ids differ from the caller's real ones; the kernel
//! decides, as it does for glibc's `__libc_enable_secure`) — the environment belongs to the user
//! who started it, not to the user it runs as, so [`var`] answers `None` for every name: no
//! override can point a root process at a directory its caller controls (PyInstaller's
//! GHSA-9fxf-4qw3-ghmr). Exec mode then refuses to run at all ([`crate::cache::CacheError::Privileged`]):
//! with no trustworthy cache location there is nowhere safe to materialise into. Lua mode,
//! which writes nothing, runs.

// The runtime's `unsafe` is confined to named modules (lib.rs lists them); this is one.
#![allow(unsafe_code)]

use std::ffi::OsString;
use std::sync::OnceLock;

/// Whether this process runs with privileges its caller does not have.
pub fn privileged() -> bool {
    static PRIVILEGED: OnceLock<bool> = OnceLock::new();
    *PRIVILEGED.get_or_init(|| {
        // The kernel sets AT_SECURE whenever the exec raised privileges, real and effective ids
        // differing included, so no id needs asking (and no system call is spent at start-up).
        // SAFETY: getauxval has no preconditions; it returns 0 when the entry is absent.
        unsafe { libc::getauxval(libc::AT_SECURE) != 0 }
    })
}

/// The variable `name`, unless it is unset, or this process is [`privileged`].
pub fn var(name: &str) -> Option<OsString> {
    if privileged() {
        None
    } else {
        std::env::var_os(name)
    }
}
