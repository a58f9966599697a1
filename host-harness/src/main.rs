//! The `certgate` command.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "certgate", version, about = "Admit HTTP requests by their TLS client certificate")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Certificate tooling.
    #[command(subcommand)]
    Pki(PkiCommand),
}

#[derive(Debug, Subcommand)]
enum PkiCommand {
    /// Regenerate the test PKI (CAs, server, clients, CRL) into a directory.
    Fixtures {
        /// Where to write the PEM files (created if missing; files are overwritten).
        #[arg(long, default_value = "fixtures/pki")]
        out: PathBuf,
    },
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Pki(PkiCommand::Fixtures { out }) => {
            let set = certgate_harness::pki::fixture_set().context("building the test PKI")?;
            set.write_to(&out)?;
            println!("wrote {} files to {}", set.files.len(), out.display());
        }
    }
    Ok(())
}
