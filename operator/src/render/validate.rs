//! Offline validation of FluxProfile documents with the CRD's own schema: the OpenAPI bounds
//! (through `jsonschema`) and the CEL rules (through kube's CEL evaluator). The CLI refuses what
//! the API server would refuse, with messages that name the field.

use std::fmt;

use jsonschema::error::{TypeKind, ValidationErrorKind};
use kube::{Resource, api::ObjectMeta, core::cel};
use serde_json::Value;

use crate::api::{self, FluxProfile};

/// One problem with one field, e.g. `spec.cluster.name: must be a DNS-1123 label ...`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Rules on the whole object name their field in the message.
        if self.field.is_empty() {
            write!(f, "{}", self.message)
        } else {
            write!(f, "{}: {}", self.field, self.message)
        }
    }
}

/// Why a document is not a valid FluxProfile.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum InputError {
    #[error("not valid YAML: {0}")]
    Yaml(String),
    #[error("document {index}: {errors}", errors = join(errors))]
    Invalid {
        /// 1-based position of the document in its file.
        index: usize,
        errors: Vec<FieldError>,
    },
}

fn join(errors: &[FieldError]) -> String {
    errors
        .iter()
        .map(|e| e.to_string())
        .collect::<Vec<_>>()
        .join("; ")
}

/// One CRD version's OpenAPI v3 schema, compiled once and checked the way the API server checks
/// it: structure (types, bounds, enums, patterns, unknown fields) through `jsonschema`, then the
/// CEL rules. FluxProfiles use it through [`Validator`]; the fuzz targets load Flux's CRDs into it.
pub struct CrdSchema {
    structural: jsonschema::Validator,
    cel: cel::CompiledSchema,
    cel_eval: cel::Validator,
}

impl CrdSchema {
    /// `schema` is a CRD version's `schema.openAPIV3Schema`.
    pub fn new(schema: &Value) -> CrdSchema {
        let mut strict = schema.clone();
        // The API server adds the object's own fields to every CRD schema.
        if let Some(props) = strict.get_mut("properties").and_then(Value::as_object_mut) {
            props.insert("apiVersion".into(), serde_json::json!({"type": "string"}));
            props.insert("kind".into(), serde_json::json!({"type": "string"}));
            props.insert("metadata".into(), serde_json::json!({"type": "object"}));
        }
        forbid_unknown_fields(&mut strict);
        CrdSchema {
            structural: jsonschema::options()
                .build(&strict)
                .expect("a CRD schema is a valid JSON schema"),
            cel: cel::compile_schema(schema),
            cel_eval: cel::Validator::new(),
        }
    }

    /// Every problem with `doc`, structural ones first; the CEL rules run only on a document
    /// whose structure is valid, as on the API server.
    pub fn errors(&self, doc: &Value) -> Vec<FieldError> {
        let mut errors: Vec<FieldError> = self
            .structural
            .iter_errors(doc)
            .flat_map(|e| structural_errors(&e))
            .collect();
        if errors.is_empty()
            && let Err(cel_errors) = self.cel_eval.validate_compiled(&self.cel, doc, None)
        {
            errors.extend(cel_errors.iter().map(|e| FieldError {
                field: e.field_path.trim_start_matches('.').to_string(),
                message: e.message.clone(),
            }));
        }
        errors
    }
}

/// The FluxProfile CRD's schema, plus the checks the API server makes before any schema.
pub struct Validator {
    schema: CrdSchema,
}

impl Default for Validator {
    fn default() -> Self {
        Self::new()
    }
}

impl Validator {
    pub fn new() -> Validator {
        let crd = api::crd();
        let schema = serde_json::to_value(
            crd.spec.versions[0]
                .schema
                .as_ref()
                .and_then(|s| s.open_api_v3_schema.as_ref())
                .expect("the derived CRD has a schema"),
        )
        .expect("the CRD schema serializes");
        Validator {
            schema: CrdSchema::new(&schema),
        }
    }

    /// Checks one document and returns the typed profile, or every error found.
    pub fn validate(&self, document: &Value) -> Result<FluxProfile, Vec<FieldError>> {
        let mut doc = document.clone();
        drop_nulls(&mut doc);
        let mut errors = identity_errors(&doc);
        if errors.is_empty() {
            errors = self.schema.errors(&doc);
        }
        if errors.is_empty() {
            // The schema covers the spec; metadata is an ObjectMeta, whose other fields only the
            // typed read checks.
            if let Some(meta) = doc.get("metadata")
                && let Err(e) = serde_json::from_value::<ObjectMeta>(meta.clone())
            {
                return Err(vec![FieldError {
                    field: "metadata".into(),
                    message: e.to_string(),
                }]);
            }
            let profile: FluxProfile = serde_json::from_value(doc).map_err(|e| {
                vec![FieldError {
                    field: "spec".into(),
                    message: e.to_string(),
                }]
            })?;
            // What CEL cannot check cheaply, and the API server so admits: the operator reports
            // it as Stalled (DependencyCycle); offline it is refused like any other rule.
            if let Some(cycle) = api::dependency_cycle(&profile.spec.kustomizations) {
                return Err(vec![FieldError {
                    field: "spec.kustomizations".into(),
                    message: api::cycle_message(&cycle),
                }]);
            }
            return Ok(profile);
        }
        errors.sort();
        errors.dedup();
        Err(errors)
    }

    /// Parses every YAML document of `text` and validates each as a FluxProfile.
    pub fn profiles_from_yaml(&self, text: &str) -> Result<Vec<FluxProfile>, InputError> {
        let docs: Vec<Value> =
            serde_saphyr::from_multiple(text).map_err(|e| InputError::Yaml(e.to_string()))?;
        docs.into_iter()
            .filter(|d| !d.is_null())
            .enumerate()
            .map(|(i, doc)| {
                self.validate(&doc).map_err(|errors| InputError::Invalid {
                    index: i + 1,
                    errors,
                })
            })
            .collect()
    }
}

fn identity_errors(doc: &Value) -> Vec<FieldError> {
    let mut errors = Vec::new();
    let mut expect = |field: &str, want: &str| {
        let got = doc.get(field).and_then(Value::as_str);
        if got != Some(want) {
            errors.push(FieldError {
                field: field.into(),
                message: format!(
                    "must be {want:?}, found {}",
                    got.map_or("nothing".into(), |g| format!("{g:?}"))
                ),
            });
        }
    };
    expect("apiVersion", &FluxProfile::api_version(&()));
    expect("kind", &FluxProfile::kind(&()));
    // What the API server checks of every object's name and namespace, in its words: the
    // children are named after the profile and live in its namespace.
    let mut name = |field: &str, required: bool, problem: fn(&str) -> Option<&'static str>| {
        let pointer = format!("/{}", field.replace('.', "/"));
        let message = match doc.pointer(&pointer) {
            None | Some(Value::Null) if !required => return,
            Some(Value::String(s)) if s.is_empty() && !required => return,
            None | Some(Value::Null) => "Required value".to_string(),
            Some(Value::String(s)) if s.is_empty() => "Required value".to_string(),
            Some(Value::String(s)) => match problem(s) {
                None => return,
                Some(what) => format!("Invalid value: {s:?}: {what}"),
            },
            Some(other) => format!("Invalid value: {other}: must be of type string"),
        };
        errors.push(FieldError {
            field: field.into(),
            message,
        });
    };
    name("metadata.name", true, dns_subdomain_problem);
    name("metadata.namespace", false, dns_label_problem);
    errors
}

const DNS_SUBDOMAIN: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";
const DNS_LABEL: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')";

/// `[a-z0-9]([-a-z0-9]*[a-z0-9])?`
fn is_label(s: &str) -> bool {
    let b = s.as_bytes();
    let alnum = |c: &u8| c.is_ascii_lowercase() || c.is_ascii_digit();
    b.first().is_some_and(alnum)
        && b.last().is_some_and(alnum)
        && b.iter().all(|c| alnum(c) || *c == b'-')
}

/// Kubernetes' IsDNS1123Subdomain, first problem only.
fn dns_subdomain_problem(s: &str) -> Option<&'static str> {
    if s.len() > 253 {
        Some("must be no more than 253 characters")
    } else if !s.split('.').all(is_label) {
        Some(DNS_SUBDOMAIN)
    } else {
        None
    }
}

/// Kubernetes' IsDNS1123Label, first problem only.
fn dns_label_problem(s: &str) -> Option<&'static str> {
    if s.len() > 63 {
        Some("must be no more than 63 characters")
    } else if !is_label(s) {
        Some(DNS_LABEL)
    } else {
        None
    }
}

/// kubectl's strict field validation refuses unknown fields (a misspelt `pollingclass` would
/// otherwise be dropped silently); JSON schema does the same with `additionalProperties: false`.
fn forbid_unknown_fields(schema: &mut Value) {
    let Some(obj) = schema.as_object_mut() else {
        return;
    };
    if obj.contains_key("properties") && !obj.contains_key("x-kubernetes-preserve-unknown-fields") {
        obj.insert("additionalProperties".into(), Value::Bool(false));
    }
    for (key, child) in obj.iter_mut() {
        match key.as_str() {
            "properties" => child
                .as_object_mut()
                .into_iter()
                .flatten()
                .for_each(|(_, s)| forbid_unknown_fields(s)),
            "items" | "additionalProperties" => forbid_unknown_fields(child),
            _ => {}
        }
    }
}

/// The API server treats an explicit null like an absent field.
fn drop_nulls(value: &mut Value) {
    match value {
        Value::Object(map) => {
            map.retain(|_, v| !v.is_null());
            map.values_mut().for_each(drop_nulls);
        }
        Value::Array(items) => items.iter_mut().for_each(drop_nulls),
        _ => {}
    }
}

/// `/spec/images/0/name` -> `spec.images[0].name`, the way the API server names fields.
fn field_path(pointer: &str) -> String {
    let mut out = String::new();
    for segment in pointer.split('/').skip(1) {
        let segment = segment.replace("~1", "/").replace("~0", "~");
        if !segment.is_empty() && segment.bytes().all(|b| b.is_ascii_digit()) {
            out.push_str(&format!("[{segment}]"));
        } else {
            if !out.is_empty() {
                out.push('.');
            }
            out.push_str(&segment);
        }
    }
    out
}

fn child(parent: &str, name: &str) -> String {
    if parent.is_empty() {
        name.to_string()
    } else {
        format!("{parent}.{name}")
    }
}

/// Messages in the API server's words, so the CLI and `kubectl apply` read alike.
fn structural_errors(e: &jsonschema::ValidationError<'_>) -> Vec<FieldError> {
    let field = field_path(e.instance_path().as_str());
    if let ValidationErrorKind::AdditionalProperties { unexpected } = e.kind() {
        return unexpected
            .iter()
            .map(|name| FieldError {
                // An empty key still gets a name to point at.
                field: child(&field, if name.is_empty() { "\"\"" } else { name }),
                message: "unknown field".into(),
            })
            .collect();
    }
    let (field, message) = match e.kind() {
        ValidationErrorKind::Required { property } => (
            child(&field, property.as_str().unwrap_or_default()),
            "Required value".to_string(),
        ),
        ValidationErrorKind::Enum { options } => {
            let allowed: Vec<String> = options
                .as_array()
                .into_iter()
                .flatten()
                .filter(|o| !o.is_null())
                .map(|o| o.to_string())
                .collect();
            (
                field,
                format!(
                    "Unsupported value: {}: supported values: {}",
                    e.instance(),
                    allowed.join(", ")
                ),
            )
        }
        ValidationErrorKind::MaxLength { limit } => (
            field,
            format!("Too long: may not be more than {limit} bytes"),
        ),
        ValidationErrorKind::MinLength { limit } => {
            let message = format!(
                "Invalid value: {}: {field} in body should be at least {limit} chars long",
                e.instance()
            );
            (field, message)
        }
        ValidationErrorKind::MaxItems { limit } => {
            let count = e.instance().as_array().map_or(0, Vec::len);
            (
                field,
                format!("Too many: {count}: must have at most {limit} items"),
            )
        }
        ValidationErrorKind::Type { kind } => {
            let want = match kind {
                TypeKind::Single(t) => t.to_string(),
                TypeKind::Multiple(ts) => format!("{ts:?}"),
            };
            (
                field,
                format!("Invalid value: {}: must be of type {want}", e.instance()),
            )
        }
        _ => (field, e.to_string()),
    };
    vec![FieldError { field, message }]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn profile(metadata: Value) -> Value {
        serde_json::json!({
            "apiVersion": "fluxtune.dev/v1alpha1",
            "kind": "FluxProfile",
            "metadata": metadata,
            "spec": {"cluster": {"name": "c"}, "source": {"url": "https://git.example.com/r.git"}},
        })
    }

    fn errors(doc: Value) -> Vec<String> {
        Validator::new()
            .validate(&doc)
            .unwrap_err()
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    /// Found by the fuzz targets (operator/fuzz, docs/fuzzing.md): a name of another type is
    /// there, but invalid, not "Required value".
    #[test]
    fn a_name_that_is_not_a_string_is_invalid_not_missing() {
        assert_eq!(
            errors(profile(serde_json::json!({"name": 5}))),
            ["metadata.name: Invalid value: 5: must be of type string"]
        );
    }

    /// Metadata fields the schema leaves to ObjectMeta were reported as `spec` (what the fuzz
    /// targets' check that an error names the part of the document that is wrong looks for).
    #[test]
    fn a_metadata_field_of_the_wrong_type_is_named_metadata() {
        let got = errors(profile(
            serde_json::json!({"name": "a", "labels": {"team": 1}}),
        ));
        assert_eq!(got.len(), 1);
        assert!(
            got[0].starts_with("metadata: invalid type: integer `1`"),
            "{got:?}"
        );
    }

    /// Found by the fuzz targets: an empty key was reported as "unknown field" without a field.
    #[test]
    fn an_empty_unknown_key_is_named() {
        let mut doc = profile(serde_json::json!({"name": "a"}));
        doc["spec"][""] = Value::Bool(true);
        assert_eq!(errors(doc), ["spec.\"\": unknown field"]);
    }

    #[test]
    fn pointers_become_api_server_field_paths() {
        assert_eq!(field_path("/spec/images/0/name"), "spec.images[0].name");
        assert_eq!(field_path(""), "");
    }
}
