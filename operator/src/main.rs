use std::{path::PathBuf, process::ExitCode};

use clap::{Parser, Subcommand};
use fluxtune::{api, cli, render::Capabilities};

/// Declarative Flux tuning for Git monorepos of many clusters.
#[derive(Parser)]
#[command(name = "fluxtune", version)]
struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Render FluxProfiles offline: Flux objects as YAML on stdout, the latency budget on stderr.
    Render {
        /// Files with one or more FluxProfiles ("-" reads stdin).
        #[arg(short = 'f', long = "file", required = true)]
        files: Vec<PathBuf>,
        /// Render for Flux CRDs without GitRepository spec.sparseCheckout (Flux before 2.6).
        #[arg(long)]
        no_sparse_checkout: bool,
    },
    /// Print the FluxProfile CRD (the bytes committed as crds/fluxprofile.yaml).
    Crd,
}

fn main() -> ExitCode {
    match Args::parse().command {
        Command::Render {
            files,
            no_sparse_checkout,
        } => {
            let caps = Capabilities {
                sparse_checkout: !no_sparse_checkout,
            };
            match cli::render_files(&files, &caps) {
                Ok((objects, budget)) => {
                    print!("{objects}");
                    eprint!("{budget}");
                    ExitCode::SUCCESS
                }
                Err(message) => {
                    eprintln!("error: {message}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Crd => {
            print!("{}", api::crd_yaml());
            ExitCode::SUCCESS
        }
    }
}
