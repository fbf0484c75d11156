use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Keeps an email security gateway's LDAP cache in step with Active Directory and LDAP directories.
#[derive(Parser)]
#[command(name = "ldapsync", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print the CustomResourceDefinitions generated from the API types (the content of `crds/`).
    Crd,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Crd => match ldapsync::api::crds_yaml() {
            Ok(yaml) => {
                print!("{yaml}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: cannot render the CRDs: {e}");
                ExitCode::from(2)
            }
        },
    }
}
