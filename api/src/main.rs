fn main() -> std::process::ExitCode {
    nve_api::cli::main()
}
