fn main() -> std::process::ExitCode {
    wrapkit::main()
}
