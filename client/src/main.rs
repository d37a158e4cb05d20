//! `nl-client`: a thin command line over the `nlimage-client` library.

mod bulk;
mod cli;
mod connect;
mod job_cli;
mod store_cli;

use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    let first = std::env::args_os().nth(1);
    let outcome = if store_cli::is_store_command(first.as_deref()) {
        use clap::Parser;
        store_cli::run(store_cli::StoreArgs::parse()).await
    } else {
        cli::run(cli::Args::from_command_line()).await
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => {
            eprintln!("nl-client: {:#}", f.error);
            ExitCode::from(f.code)
        }
    }
}
