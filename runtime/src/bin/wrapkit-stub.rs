//! The runtime stub: the program at the front of every packed executable.

fn main() -> std::process::ExitCode {
    wrapkit_runtime::stub::main()
}
