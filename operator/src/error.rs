//! One error type for the operator; conditions carry what the user must fix.

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error(
        "the FluxProfile CRD is not installed: apply crds/fluxprofile.yaml (or `fluxtune crd | kubectl apply -f -`)"
    )]
    ProfileCrdMissing,
    #[error("lost the leader lease; exiting so a fresh process can rejoin the election")]
    LostLeadership,
    #[error("leader election: {0}")]
    Lease(#[from] kube_lease_manager::LeaseManagerError),
    #[error("kubeconfig: {0}")]
    Config(String),
    #[error("HTTP server: {0}")]
    Http(#[from] std::io::Error),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// A bounded label for the errors metric.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Error::Kube(kube::Error::Api(s)) if s.code == 409 => "conflict",
            Error::Kube(kube::Error::Api(s)) if s.code == 403 => "forbidden",
            Error::Kube(kube::Error::Api(_)) => "api",
            Error::Kube(_) => "transport",
            Error::ProfileCrdMissing => "profile_crd_missing",
            Error::LostLeadership | Error::Lease(_) => "lease",
            Error::Config(_) => "config",
            Error::Http(_) => "http",
        }
    }
}
