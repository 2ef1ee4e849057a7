//! Exit codes of a packed executable when the runtime itself fails (the app's own status passes
//! through unchanged). Documented in docs/cli.md ("Exit codes"); keep the two in step.

/// The payload is missing, truncated, corrupt or tampered with.
pub const BAD_PAYLOAD: u8 = 120;
/// The payload is well-formed but asks for something this runtime does not support (a newer
/// format version, an unknown run mode).
pub const UNSUPPORTED: u8 = 121;
/// The runtime could not read its own executable (I/O error, no way to find itself).
pub const IO: u8 = 123;
/// An uncaught Lua error, as `lua script.lua` exits.
pub const LUA_ERROR: u8 = 1;
/// Exec mode: no usable cache directory (no location, wrong owner or mode, read-only, `noexec`,
/// full disk) or the tree could not be materialised.
pub const CACHE: u8 = 122;
/// Exec mode: the program exists in the tree but cannot be executed (permission, format).
pub const CANNOT_EXECUTE: u8 = 126;
/// Exec mode: the program (or the interpreter it names) does not exist.
pub const NOT_FOUND: u8 = 127;
