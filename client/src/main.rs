//! `nl-client`: a thin command line over the `nlimage-client` library.

mod cli;
mod connect;

use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    let args = cli::Args::from_command_line();
    match cli::run(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => {
            eprintln!("nl-client: {:#}", f.error);
            ExitCode::from(f.code)
        }
    }
}
