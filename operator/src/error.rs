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
    /// What only a person can fix: retrying the same request gets the same answer. Admission
    /// denials (a ValidatingAdmissionPolicy or webhook answers 400, 403 or 422), RBAC refusals
    /// (403), invalid objects (422), malformed requests (400) and a kind the server does not serve
    /// (404 on the collection). Conflicts, throttling, server errors and transport errors pass.
    pub fn is_permanent(&self) -> bool {
        match self {
            Error::Kube(kube::Error::Api(s)) => matches!(s.code, 400 | 403 | 404 | 422),
            Error::ProfileCrdMissing | Error::Config(_) => true,
            _ => false,
        }
    }

    /// What a person reads in a condition: the API server's own message (it names the object and
    /// the policy or field), without the client's debug dump of the response.
    pub fn user_message(&self) -> String {
        match self {
            Error::Kube(kube::Error::Api(s)) => format!("{} ({} {})", s.message, s.code, s.reason),
            other => other.to_string(),
        }
    }

    /// A bounded label for the errors metric.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Error::Kube(kube::Error::Api(s)) if s.code == 409 => "conflict",
            Error::Kube(kube::Error::Api(s)) if s.code == 403 => "forbidden",
            Error::Kube(kube::Error::Api(s)) if matches!(s.code, 400 | 404 | 422) => "rejected",
            Error::Kube(kube::Error::Api(_)) => "api",
            Error::Kube(_) => "transport",
            Error::ProfileCrdMissing => "profile_crd_missing",
            Error::LostLeadership | Error::Lease(_) => "lease",
            Error::Config(_) => "config",
            Error::Http(_) => "http",
        }
    }
}
