//! `nl-client`: a thin command line over the `nlimage-client` library.

mod bulk;
mod cli;
mod command;
mod connect;
mod job_cli;
mod store_cli;

use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    let outcome = match command::Invocation::from_command_line() {
        command::Invocation::Store(args) => store_cli::run(args).await,
        command::Invocation::Process(args) => cli::run(args).await,
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => {
            eprintln!("nl-client: {:#}", f.error);
            ExitCode::from(f.code)
        }
    }
}
