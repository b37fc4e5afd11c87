//! The `focalgate` binary: everything lives in the library; see `focalgate --help`.

fn main() -> std::process::ExitCode {
    focalgate::cli::main()
}
