use std::{path::PathBuf, process::ExitCode};

use clap::{Parser, Subcommand};
use fluxtune::{
    api, cli,
    controller::{self, RunOptions},
    leader::Timing,
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
    /// How long a standby waits after the leader's last renewal before it takes the lease
    /// (whole seconds; client-go's default).
    #[arg(long, env = "FLUXTUNE_LEASE_DURATION", default_value = "15s", value_parser = seconds)]
    lease_duration: std::time::Duration,
    /// How long the leader goes on without a successful renewal: shorter than the lease duration,
    /// so it stops reconciling (and exits) before another replica can take the lease.
    #[arg(long, env = "FLUXTUNE_RENEW_DEADLINE", default_value = "10s", value_parser = seconds)]
    renew_deadline: std::time::Duration,
    /// This replica's identity in the election (default: the pod name, else host and pid).
    #[arg(long, env = "POD_NAME")]
    identity: Option<String>,
    #[arg(long, env = "FLUXTUNE_LOG_FORMAT", value_enum, default_value = "text")]
    log_format: LogFormat,
    /// At most this many FluxProfiles reconcile at once (1-65535), so a start with many profiles
    /// does not burst the API server.
    #[arg(
        long,
        env = "FLUXTUNE_MAX_CONCURRENT_RECONCILES",
        default_value_t = 8,
        value_parser = clap::value_parser!(u16).range(1..)
    )]
    max_concurrent_reconciles: u16,
    /// Objects per page when a watch lists them (1 or more). A start with a thousand profiles
    /// lists them and a thousand objects of each Flux kind at once: parsed whole, those lists
    /// were most of the process's peak memory, which the allocator then kept
    /// (docs/benchmarks.md, "1000 profiles"). Larger pages take fewer requests. The lists are
    /// served from the API server's watch cache, which pages them from Kubernetes 1.34 (KEP-4988,
    /// tested on 1.36); older API servers answer them whole whatever the page size.
    #[arg(
        long,
        env = "FLUXTUNE_LIST_PAGE_SIZE",
        default_value_t = 100,
        value_parser = clap::value_parser!(u32).range(1..)
    )]
    list_page_size: u32,
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
            let election = match Timing::new(run.lease_duration, run.renew_deadline) {
                Ok(election) => election,
                Err(message) => {
                    eprintln!("error: {message}");
                    return ExitCode::FAILURE;
                }
            };
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
                election,
                max_concurrent_reconciles: run.max_concurrent_reconciles,
                list_page_size: run.list_page_size,
                tenancy: fluxtune::tenancy::Tenancy {
                    default_service_account: run.default_service_account,
                    source_url_prefixes: run.allowed_source_url_prefixes,
                    target_namespaces: run.allowed_target_namespaces,
                    source_secrets: run.allowed_source_secrets,
                },
            };
            // One thread: a reconcile is milliseconds of work between requests, and with two
            // workers 18% of the operator's CPU went to handing tasks and wake-ups between them
            // (docs/benchmarks.md, runs 26-29). Nothing here blocks the thread.
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a tokio runtime starts");
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

/// "15s" or "15": whole seconds.
fn seconds(value: &str) -> Result<std::time::Duration, String> {
    value
        .strip_suffix('s')
        .unwrap_or(value)
        .parse::<u64>()
        .map(std::time::Duration::from_secs)
        .map_err(|_| format!("{value:?} is not a number of seconds such as 15s"))
}

fn default_identity() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    format!("{}-{}", host.trim(), std::process::id())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run_flags(args: &[&str]) -> Result<Box<Run>, clap::Error> {
        let argv = ["fluxtune", "run"].iter().chain(args);
        match Args::try_parse_from(argv)?.command {
            Command::Run(run) => Ok(run),
            _ => unreachable!(),
        }
    }

    #[test]
    fn the_election_defaults_are_client_gos_and_the_deadline_comes_before_the_lease_ends() {
        let run = run_flags(&[]).unwrap();
        assert_eq!(
            Timing::new(run.lease_duration, run.renew_deadline),
            Ok(Timing::DEFAULT)
        );
        let run = run_flags(&["--lease-duration", "8s", "--renew-deadline", "5"]).unwrap();
        let timing = Timing::new(run.lease_duration, run.renew_deadline).unwrap();
        assert_eq!(
            (
                timing.lease_duration().as_secs(),
                timing.renew_deadline().as_secs()
            ),
            (8, 5)
        );
        let run = run_flags(&["--renew-deadline", "15s"]).unwrap();
        assert!(Timing::new(run.lease_duration, run.renew_deadline).is_err());
        assert!(run_flags(&["--lease-duration", "1m"]).is_err());
    }

    /// deploy/'s container args and literal env values, as `fluxtune run` reads them: each env
    /// variable becomes the flag that reads it, so a value the flag refuses fails here.
    #[test]
    fn deploy_s_args_and_env_are_accepted_by_the_flags_they_set() {
        use clap::CommandFactory;
        let doc: serde_json::Value =
            serde_saphyr::from_str(include_str!("../../deploy/deployment.yaml")).unwrap();
        let container = &doc["spec"]["template"]["spec"]["containers"][0];
        let args: Vec<String> = container["args"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a.as_str().unwrap().to_string())
            .collect();
        assert_eq!(args[0], "run");
        let command = Args::command();
        let run = command.find_subcommand("run").unwrap();
        let mut flags = args[1..].to_vec();
        let mut literal = Vec::new();
        for env in container["env"].as_array().unwrap() {
            let (Some(name), Some(value)) = (env["name"].as_str(), env["value"].as_str()) else {
                continue;
            };
            let arg = run
                .get_arguments()
                .find(|a| a.get_env().is_some_and(|e| e == name))
                .unwrap_or_else(|| panic!("no flag reads {name}"));
            flags.extend([format!("--{}", arg.get_long().unwrap()), value.into()]);
            literal.push(name);
        }
        assert_eq!(
            literal,
            [
                "FLUXTUNE_LEASE_DURATION",
                "FLUXTUNE_RENEW_DEADLINE",
                "FLUXTUNE_MAX_CONCURRENT_RECONCILES"
            ]
        );
        let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
        let run = run_flags(&flags).unwrap();
        assert_eq!(
            Timing::new(run.lease_duration, run.renew_deadline),
            Ok(Timing::DEFAULT),
            "deploy/ sets the defaults"
        );
        assert_eq!(run.max_concurrent_reconciles, 8);
    }

    #[test]
    fn reconcile_concurrency_is_bounded_by_default_and_never_unbounded() {
        assert_eq!(run_flags(&[]).unwrap().max_concurrent_reconciles, 8);
        assert_eq!(
            run_flags(&["--max-concurrent-reconciles", "2"])
                .unwrap()
                .max_concurrent_reconciles,
            2
        );
        // kube-runtime reads 0 as "unbounded".
        let refused = run_flags(&["--max-concurrent-reconciles", "0"]).map(|_| ());
        assert_eq!(
            refused.map_err(|e| e.kind()),
            Err(clap::error::ErrorKind::ValueValidation)
        );
    }

    #[test]
    fn watches_list_in_pages_of_a_hundred_unless_told_otherwise() {
        assert_eq!(run_flags(&[]).unwrap().list_page_size, 100);
        assert_eq!(
            run_flags(&["--list-page-size", "2"])
                .unwrap()
                .list_page_size,
            2
        );
        // kube reads 0 as "no limit": one whole list again.
        let refused = run_flags(&["--list-page-size", "0"]).map(|_| ());
        assert_eq!(
            refused.map_err(|e| e.kind()),
            Err(clap::error::ErrorKind::ValueValidation)
        );
    }
}
