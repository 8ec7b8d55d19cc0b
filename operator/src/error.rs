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
    #[error(
        "could not renew the leader lease within --renew-deadline ({0:?}): stopped reconciling before the lease could pass to another replica; exiting so a fresh process can rejoin the election"
    )]
    RenewDeadline(std::time::Duration),
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
    /// (404 on the collection), a field the installed CRD does not declare. Conflicts,
    /// throttling, other server errors and transport errors pass.
    pub fn is_permanent(&self) -> bool {
        match self {
            Error::Kube(kube::Error::Api(s)) => {
                matches!(s.code, 400 | 403 | 404 | 422)
                    // Server-side apply of a field the installed CRD lacks (an older Flux) fails
                    // while building the typed patch, answered as a 500.
                    || (s.code == 500 && s.message.contains("field not declared in schema"))
            }
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
            Error::LostLeadership | Error::RenewDeadline(_) | Error::Lease(_) => "lease",
            Error::Config(_) => "config",
            Error::Http(_) => "http",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api(code: u16, message: &str) -> Error {
        Error::Kube(kube::Error::Api(Box::new(
            kube::core::Status::failure(message, "").with_code(code),
        )))
    }

    #[test]
    fn what_only_a_person_can_fix_is_permanent() {
        assert!(api(422, "denied by policy").is_permanent());
        assert!(api(403, "forbidden").is_permanent());
        assert!(
            api(500, "failed to create typed patch object (x): .spec.deletionPolicy: field not declared in schema")
                .is_permanent()
        );
        assert!(!api(500, "etcdserver: request timed out").is_permanent());
        assert!(!api(409, "the object has been modified").is_permanent());
        assert!(!api(429, "too many requests").is_permanent());
    }
}
