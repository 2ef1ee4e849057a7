//! The runtime stub: the program at the front of every packed executable.
//!
//! It defines the C `main` itself (`no_main`) instead of going through Rust's `lang_start`,
//! which would read `/proc/self/maps` to set up a stack-overflow handler and set `SIGPIPE` to
//! "ignore" before our first line runs. Skipping it saves start-up time on every run and leaves
//! the signal dispositions exactly as the caller set them, for the Lua app and for a program
//! exec mode runs, as if that program had been started directly. (On glibc, `std::env::args`
//! does not need `lang_start`.)

#![no_main]

use std::ffi::{c_char, c_int};

// Exporting the C `main` symbol is `unsafe` to the lint (another `main` would clash); it is the
// only one in the binary.
#[allow(unsafe_code)]
#[unsafe(no_mangle)]
extern "C" fn main(_argc: c_int, _argv: *const *const c_char) -> c_int {
    c_int::from(wrapkit_runtime::stub::main())
}
