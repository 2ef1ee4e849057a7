//! The wrapkit runtime: everything a packed executable needs to run itself, and the one owner of
//! the payload format.
//!
//! A packed executable is a static stub followed by a standard zip archive whose comment is our
//! trailer. This crate is used twice:
//!
//! - by the **stub** (`src/bin/wrapkit-stub.rs`, feature `lua`): it maps its own file
//!   ([`selfexe`], [`mapping`]), opens the archive in O(1) ([`archive::Archive::open`]) and runs the
//!   app the manifest names ([`stub`]);
//! - by the **packer** (crate `wrapkit`, without the `lua` feature): it writes archives through
//!   [`format::writer::ArchiveWriter`] and reads them back through the same [`archive::Archive`],
//!   so `wrapkit` and the stub can never disagree about a byte.
//!
//! The three types that matter are [`archive::Archive`] (a validated, read-only view of a payload),
//! [`format::index::Entry`] (one file, directory or symlink in it) and [`format::manifest::Manifest`]
//! (what to run).
//!
//! All `unsafe` lives in [`mapping`] (mapping a file), [`selfexe`] and [`environ`] (reading the
//! auxiliary vector), `lua::stream` (handing archive entries to Lua as C `FILE*` handles) and
//! [`exec`] (`execve`). The directory-handle system calls of [`beneath`] and the cache
//! (`openat2`, `mkdirat`, `renameat2`, `flock`, `syncfs`…) go through `rustix`, without `unsafe`.

pub mod archive;
pub mod beneath;
pub mod cache;
pub mod environ;
pub mod exec;
pub mod exit;
pub mod extract;
pub mod format;
pub mod mapping;
pub mod report;
pub mod selfcare;
pub mod selfexe;
pub mod validate;
pub mod verify;

#[cfg(test)]
mod test_alloc;

#[cfg(feature = "lua")]
mod lua;
#[cfg(feature = "lua")]
pub mod stub;
