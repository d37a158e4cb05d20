//! `nl-client`: a thin command line over the `nlimage-client` library.

mod bulk;
mod cli;
mod connect;
mod job_cli;
mod store_cli;

use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    let outcome = match cli::Invocation::from_command_line() {
        cli::Invocation::Store(args) => store_cli::run(args).await,
        cli::Invocation::Process(args) => cli::run(args).await,
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => {
            eprintln!("nl-client: {:#}", f.error);
            ExitCode::from(f.code)
        }
    }
}
