use std::{path::PathBuf, process::ExitCode};

use clap::{Parser, Subcommand};
use fluxtune::{
    api, cli,
    controller::{self, RunOptions},
    render::Capabilities,
    telemetry::{self, LogFormat},
};

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
    /// Run the operator against the current kubeconfig (in-cluster config when deployed).
    Run(Box<Run>),
}

#[derive(clap::Args)]
struct Run {
    /// Watch FluxProfiles and their objects in this namespace only (default: all namespaces).
    #[arg(long, env = "FLUXTUNE_NAMESPACE")]
    namespace: Option<String>,
    /// Address of /metrics, /healthz and /readyz.
    #[arg(long, env = "FLUXTUNE_HTTP_ADDR", default_value = "0.0.0.0:8080")]
    http_addr: std::net::SocketAddr,
    /// Elect a leader on a coordination.k8s.io Lease, so only one replica writes.
    #[arg(long, env = "FLUXTUNE_LEADER_ELECTION", default_value_t = true, action = clap::ArgAction::Set)]
    leader_election: bool,
    /// Namespace of the Lease (default: the pod's namespace, else --namespace, else "default").
    #[arg(long, env = "POD_NAMESPACE")]
    lease_namespace: Option<String>,
    #[arg(long, default_value = "fluxtune-leader")]
    lease_name: String,
    /// This replica's identity in the election (default: the pod name, else host and pid).
    #[arg(long, env = "POD_NAME")]
    identity: Option<String>,
    #[arg(long, env = "FLUXTUNE_LOG_FORMAT", value_enum, default_value = "text")]
    log_format: LogFormat,
    /// ServiceAccount (in the profile's namespace) that kustomize-controller impersonates for
    /// profiles that set no spec.apply.serviceAccountName, like Flux's --default-service-account.
    #[arg(long, env = "FLUXTUNE_DEFAULT_SERVICE_ACCOUNT", value_parser = clap::builder::NonEmptyStringValueParser::new())]
    default_service_account: Option<String>,
    /// Only Git URLs starting with one of these (repeat the flag, or comma-separate).
    #[arg(
        long = "allowed-source-url-prefix",
        value_parser = clap::builder::NonEmptyStringValueParser::new(),
        env = "FLUXTUNE_ALLOWED_SOURCE_URL_PREFIXES",
        value_delimiter = ','
    )]
    allowed_source_url_prefixes: Vec<String>,
    /// Only these spec.apply.targetNamespace values, which then must be set.
    #[arg(
        long = "allowed-target-namespace",
        value_parser = clap::builder::NonEmptyStringValueParser::new(),
        env = "FLUXTUNE_ALLOWED_TARGET_NAMESPACES",
        value_delimiter = ','
    )]
    allowed_target_namespaces: Vec<String>,
    /// Only these Git credential Secrets (spec.source.secretRef.name).
    #[arg(
        long = "allowed-source-secret",
        value_parser = clap::builder::NonEmptyStringValueParser::new(),
        env = "FLUXTUNE_ALLOWED_SOURCE_SECRETS",
        value_delimiter = ','
    )]
    allowed_source_secrets: Vec<String>,
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
                    for line in message.lines() {
                        eprintln!("error: {line}");
                    }
                    ExitCode::FAILURE
                }
            }
        }
        Command::Run(run) => {
            telemetry::init(run.log_format);
            let opts = RunOptions {
                lease_namespace: run
                    .lease_namespace
                    .or_else(|| run.namespace.clone())
                    .unwrap_or_else(|| "default".into()),
                identity: run.identity.unwrap_or_else(default_identity),
                namespace: run.namespace,
                http_addr: run.http_addr,
                leader_election: run.leader_election,
                lease_name: run.lease_name,
                tenancy: fluxtune::tenancy::Tenancy {
                    default_service_account: run.default_service_account,
                    source_url_prefixes: run.allowed_source_url_prefixes,
                    target_namespaces: run.allowed_target_namespaces,
                    source_secrets: run.allowed_source_secrets,
                },
            };
            let runtime = tokio::runtime::Runtime::new().expect("a tokio runtime starts");
            match runtime.block_on(controller::run(opts)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    tracing::error!(error = %e, "fluxtune stopped");
                    eprintln!("error: {e}");
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

fn default_identity() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    format!("{}-{}", host.trim(), std::process::id())
}
