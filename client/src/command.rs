//! The whole `nl-client` command line, parsed by clap alone: the default
//! command (process files: [`crate::cli::Args`]) or a store or job command
//! ([`crate::store_cli::Command`]).

use clap::{CommandFactory, FromArgMatches, Parser};
use nlimage_client::Operation;

use crate::cli::{Args, EXIT_CODES};

/// The whole command line: the default command (process files, [`Args`])
/// or one of the store's commands (`put`, `get`, `rm`, `ls`, `job`), told
/// apart by clap: a subcommand excuses the default command's required flags
/// and excludes its other flags; the connection flags and `--retries` are
/// global and go with either, before or after the subcommand.
#[derive(Parser, Debug)]
#[command(
    name = "nl-client",
    version,
    about = "Send images through nl-server and write the results; keep them in its store.",
    after_help = EXIT_CODES,
    subcommand_negates_reqs = true
)]
struct Cli {
    #[command(subcommand)]
    store: Option<crate::store_cli::Command>,
    #[command(flatten)]
    process: Args,
}

/// What `nl-client` was asked to do.
#[derive(Debug)]
pub enum Invocation {
    /// Process files (the default command).
    Process(Args),
    /// A store or job command.
    Store(crate::store_cli::StoreArgs),
}

impl Invocation {
    /// Parses the process's arguments (exiting with usage on error, code 2).
    pub fn from_command_line() -> Invocation {
        Self::try_from_iter(std::env::args_os()).unwrap_or_else(|e| e.exit())
    }

    /// Parses `argv` (program name first), keeping the order in which --op,
    /// --rotate and --mean were given.
    pub fn try_from_iter<I, T>(argv: I) -> Result<Invocation, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        let mut cmd = Cli::command();
        let matches = cmd.try_get_matches_from_mut(argv)?;
        if let Some((sub, _)) = matches.subcommand() {
            // clap's own exclusion (`args_conflicts_with_subcommands`) would
            // refuse the global flags before a subcommand too.
            let local = cmd.get_arguments().find(|a| {
                !a.is_global_set()
                    && matches.value_source(a.get_id().as_str())
                        == Some(clap::parser::ValueSource::CommandLine)
            });
            if let Some(a) = local {
                let name = a.get_long().unwrap_or(a.get_id().as_str()).to_owned();
                return Err(cmd.error(
                    clap::error::ErrorKind::ArgumentConflict,
                    format!(
                        "'--{name}' is a flag of processing files (no command), not of '{sub}'"
                    ),
                ));
            }
        }
        let cli = Cli::from_arg_matches(&matches)?;
        let mut args = cli.process;
        if let Some(command) = cli.store {
            return Ok(Invocation::Store(crate::store_cli::StoreArgs {
                command,
                connect: args.connect,
                retries: args.retries,
            }));
        }
        let at = |id: &str| -> Vec<usize> {
            matches
                .indices_of(id)
                .map(|i| i.collect())
                .unwrap_or_default()
        };
        let mut ordered: Vec<(usize, Operation)> = Vec::new();
        ordered.extend(at("ops").into_iter().zip(args.ops.iter().cloned()));
        ordered.extend(
            at("rotate")
                .into_iter()
                .zip(args.rotate.iter().map(|r| Operation::Rotate(*r))),
        );
        ordered.extend(at("mean").into_iter().map(|i| (i, Operation::Mean3x3)));
        ordered.sort_by_key(|(i, _)| *i);
        args.ordered = ordered.into_iter().map(|(_, op)| op).collect();
        Ok(Invocation::Process(args))
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    #[test]
    fn operations_keep_command_line_order_across_flags() {
        let Ok(Invocation::Process(args)) = Invocation::try_from_iter([
            "nl-client",
            "-i",
            "a.png",
            "-o",
            "b.png",
            "--mean",
            "--op",
            "crop=0,0,2,2",
            "--rotate",
            "90",
            "--op",
            "gray",
            "--mean",
        ]) else {
            panic!("the default command")
        };
        let specs: Vec<String> = args.ordered.iter().map(ToString::to_string).collect();
        assert_eq!(specs, ["mean", "crop=0,0,2,2", "rotate=90", "gray", "mean"]);
    }

    #[test]
    fn a_bad_spec_is_a_usage_error_naming_it() {
        let e = Invocation::try_from_iter(["nl-client", "-i", "a", "-o", "b", "--op", "blur=-2"])
            .unwrap_err();
        assert_eq!(e.exit_code(), 2);
        let text = e.to_string();
        assert!(text.contains("--op") && text.contains("blur=-2"), "{text}");
    }

    #[test]
    fn clap_tells_the_default_command_from_the_store_commands() {
        let store = Invocation::try_from_iter(["nl-client", "--port", "7", "put", "a.png"]);
        match store.unwrap() {
            Invocation::Store(s) => {
                assert_eq!(s.connect.port, 7);
                assert!(matches!(s.command, crate::store_cli::Command::Put { .. }));
            }
            other => panic!("{other:?}"),
        }
        let after = Invocation::try_from_iter(["nl-client", "get", "ID", "o.png", "--port", "9"]);
        assert!(matches!(after.unwrap(), Invocation::Store(s) if s.connect.port == 9));
        // The default command's flags with a store command: a usage error.
        let e = Invocation::try_from_iter(["nl-client", "--mean", "put", "a.png"]).unwrap_err();
        assert_eq!(e.exit_code(), 2);
        // A file named like a command is still a file after --input.
        let p = Invocation::try_from_iter(["nl-client", "-i", "put", "-o", "ls.png"]).unwrap();
        assert!(matches!(p, Invocation::Process(a) if a.input == [PathBuf::from("put")]));
        // Neither: the default command's required flags are missing.
        assert_eq!(
            Invocation::try_from_iter(["nl-client"])
                .unwrap_err()
                .exit_code(),
            2
        );
    }
}
