//! The monitoring components ask only for what fluxtune exports: every PromQL expression of the
//! Grafana dashboard (deploy/components/dashboard) and of the alerts (deploy/components/alerts),
//! parsed by a PromQL parser, names metrics, labels and label values that the /metrics of a
//! running operator has once it reconciled one profile and failed to reconcile another.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::admissionregistration::v1::ValidatingWebhookConfiguration;
use kube::Api;
use kube::api::{DeleteParams, PostParams};
use promql_parser::{
    label::{MatchOp, Matcher},
    parser::{self, Expr, LabelModifier, VectorSelector},
};
use serde_json::{Value, json};

use crate::support::{self, Operator, PATIENCE, eventually};

const DASHBOARD: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../deploy/components/dashboard/fluxtune.json"
);
const RULES: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../deploy/components/alerts/prometheusrule.yaml"
);

/// One PromQL expression of a component, where it is, and labels its context needs on top of
/// what the expression itself names (a Grafana `label_values` variable's label).
struct Query {
    at: String,
    promql: String,
    labels: Vec<String>,
}

/// Grafana's interval variables are not PromQL; any other `$` outside a string still fails to parse.
fn grafana(expr: &str) -> String {
    expr.replace("$__rate_interval", "5m")
        .replace("$__interval", "1m")
        .replace("$__range", "1h")
}

fn dashboard_queries() -> Vec<Query> {
    let dashboard: Value = serde_json::from_str(&std::fs::read_to_string(DASHBOARD).unwrap())
        .expect("the dashboard is JSON");
    let mut out = Vec::new();
    fn panels(list: &Value, out: &mut Vec<Query>) {
        for panel in list.as_array().expect("panels is a list") {
            let title = panel["title"].as_str().expect("every panel has a title");
            if panel["type"] == "row" {
                panels(&panel["panels"], out);
                continue;
            }
            let targets = panel["targets"].as_array().filter(|t| !t.is_empty());
            for target in targets.unwrap_or_else(|| panic!("panel {title:?} queries nothing")) {
                let expr = target["expr"].as_str();
                out.push(Query {
                    at: format!("dashboard panel {title:?} query {}", target["refId"]),
                    promql: grafana(
                        expr.unwrap_or_else(|| panic!("{title:?}: a target without expr")),
                    ),
                    labels: vec![],
                });
            }
        }
    }
    panels(&dashboard["panels"], &mut out);
    for var in dashboard["templating"]["list"].as_array().unwrap() {
        if var["type"] != "query" {
            continue;
        }
        let name = &var["name"];
        let query = var["query"]["query"]
            .as_str()
            .expect("a query variable's query");
        // label_values(SELECTOR, LABEL) is Grafana's; the selector is PromQL.
        let (selector, label) = query
            .strip_prefix("label_values(")
            .and_then(|q| q.strip_suffix(')'))
            .and_then(|q| q.rsplit_once(','))
            .unwrap_or_else(|| {
                panic!("variable {name}: want label_values(SELECTOR, LABEL), got {query:?}")
            });
        out.push(Query {
            at: format!("dashboard variable {name}"),
            promql: grafana(selector.trim()),
            labels: vec![label.trim().to_string()],
        });
    }
    out
}

fn rule_queries() -> Vec<Query> {
    let rule: Value = serde_saphyr::from_str(&std::fs::read_to_string(RULES).unwrap())
        .expect("the PrometheusRule is YAML");
    let mut out = Vec::new();
    for group in rule["spec"]["groups"].as_array().expect("spec.groups") {
        for r in group["rules"].as_array().expect("a group's rules") {
            let name = r["alert"].as_str().or(r["record"].as_str()).unwrap();
            out.push(Query {
                at: format!("rule {name}"),
                promql: r["expr"].as_str().expect("a rule's expr").to_string(),
                labels: vec![],
            });
        }
    }
    out
}

/// What an expression asks of one metric: the labels it matches, groups or joins by (a `by` or
/// `on` clause needs its labels on every series below it), and the exact values it matches.
#[derive(Debug)]
struct Wanted {
    metric: String,
    labels: BTreeSet<String>,
    values: Vec<(String, String)>,
}

fn wanted(expr: &Expr, grouping: &[String], out: &mut Vec<Wanted>) {
    let with = |modifier: Option<&LabelModifier>| {
        let mut labels = grouping.to_vec();
        if let Some(LabelModifier::Include(l)) = modifier {
            labels.extend(l.labels.iter().cloned());
        }
        labels
    };
    match expr {
        Expr::Aggregate(a) => {
            wanted(&a.expr, &with(a.modifier.as_ref()), out);
            if let Some(param) = &a.param {
                wanted(param, grouping, out);
            }
        }
        Expr::Binary(b) => {
            let labels = with(b.modifier.as_ref().and_then(|m| m.matching.as_ref()));
            wanted(&b.lhs, &labels, out);
            wanted(&b.rhs, &labels, out);
        }
        Expr::Unary(u) => wanted(&u.expr, grouping, out),
        Expr::Paren(p) => wanted(&p.expr, grouping, out),
        Expr::Subquery(s) => wanted(&s.expr, grouping, out),
        Expr::Call(c) => c.args.args.iter().for_each(|a| wanted(a, grouping, out)),
        Expr::MatrixSelector(m) => out.push(selector(&m.vs, grouping)),
        Expr::VectorSelector(v) => out.push(selector(v, grouping)),
        Expr::NumberLiteral(_) | Expr::StringLiteral(_) => {}
        Expr::Extension(_) => panic!("the parser makes no extension nodes"),
    }
}

fn selector(v: &VectorSelector, grouping: &[String]) -> Wanted {
    let matchers: Vec<&Matcher> = v.matchers.matchers.iter().collect();
    assert!(
        v.matchers.or_matchers.is_empty(),
        "{v}: `or` inside a selector is not Prometheus's PromQL"
    );
    let metric = v
        .name
        .clone()
        .unwrap_or_else(|| panic!("{v} names no metric"));
    let mut labels: BTreeSet<String> = grouping.iter().cloned().collect();
    let mut values = Vec::new();
    for m in matchers.iter().filter(|m| m.name != "__name__") {
        labels.insert(m.name.clone());
        // A Grafana variable's value is the user's pick; a literal must exist.
        if matches!(m.op, MatchOp::Equal) && !m.value.contains('$') {
            values.push((m.name.clone(), m.value.clone()));
        }
    }
    Wanted {
        metric,
        labels,
        values,
    }
}

/// The series of an OpenMetrics page: sample name -> each series' labels.
fn series(text: &str) -> BTreeMap<String, Vec<BTreeMap<String, String>>> {
    let mut all: BTreeMap<String, Vec<BTreeMap<String, String>>> = BTreeMap::new();
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let (name, labels) = match line.split_once('{') {
            Some((name, rest)) => {
                let (labels, _) = rest.rsplit_once('}').expect("a closed label set");
                (name, parse_labels(labels))
            }
            None => (line.split(' ').next().unwrap(), BTreeMap::new()),
        };
        all.entry(name.to_string()).or_default().push(labels);
    }
    all
}

fn parse_labels(text: &str) -> BTreeMap<String, String> {
    let mut labels = BTreeMap::new();
    let mut rest = text;
    while let Some((name, after)) = rest.split_once("=\"") {
        let mut value = String::new();
        let mut chars = after.char_indices();
        let end = loop {
            match chars.next().expect("a closed label value") {
                (_, '\\') => value.push(chars.next().expect("an escaped character").1),
                (i, '"') => break i,
                (_, c) => value.push(c),
            }
        };
        labels.insert(name.trim_start_matches(',').to_string(), value);
        rest = &after[end + 1..];
    }
    labels
}

/// What the queries ask that /metrics lacks, one line each.
fn missing(queries: &[Query], metrics: &str) -> Vec<String> {
    let series = series(metrics);
    let mut problems = Vec::new();
    for q in queries {
        let expr = match parser::parse(&q.promql) {
            Ok(expr) => expr,
            Err(e) => {
                problems.push(format!("{}: not PromQL ({e}): {}", q.at, q.promql));
                continue;
            }
        };
        let mut asked = Vec::new();
        wanted(&expr, &[], &mut asked);
        if asked.is_empty() {
            problems.push(format!("{}: queries no metric: {}", q.at, q.promql));
        }
        for mut w in asked {
            w.labels.extend(q.labels.iter().cloned());
            let Some(found) = series.get(&w.metric) else {
                problems.push(format!("{}: no {} on /metrics", q.at, w.metric));
                continue;
            };
            for label in &w.labels {
                if !found.iter().any(|s| s.contains_key(label)) {
                    problems.push(format!("{}: {} has no label {label}", q.at, w.metric));
                }
            }
            for (label, value) in &w.values {
                if !found.iter().any(|s| s.get(label) == Some(value)) {
                    problems.push(format!("{}: no {}{{{label}=\"{value}\"}}", q.at, w.metric));
                }
            }
        }
    }
    problems
}

#[test]
fn the_checks_find_what_is_missing() {
    // The checks themselves, on a page written here: each kind of mistake is reported.
    let page = "# TYPE fluxtune_profile_delivered gauge\n\
        fluxtune_profile_delivered{namespace=\"a\",profile=\"p \\\"q\\\"\"} 1\n\
        fluxtune_reconciles_total{result=\"ok\"} 3\n# EOF\n";
    let query = |promql: &str, labels: &[&str]| Query {
        at: "q".into(),
        promql: promql.into(),
        labels: labels.iter().map(|l| l.to_string()).collect(),
    };
    let ok = [
        query(
            "max by (namespace, profile) (fluxtune_profile_delivered{namespace=~\"$ns\"}) == 0",
            &[],
        ),
        query(
            "sum by (result) (rate(fluxtune_reconciles_total{result=\"ok\"}[5m]))",
            &[],
        ),
        query("fluxtune_profile_delivered", &["profile"]),
    ];
    assert_eq!(missing(&ok, page), Vec::<String>::new());
    for (promql, labels, want) in [
        (
            "fluxtune_profile_deliverd",
            &[][..],
            "q: no fluxtune_profile_deliverd on /metrics",
        ),
        (
            "sum by (path) (fluxtune_profile_delivered)",
            &[],
            "q: fluxtune_profile_delivered has no label path",
        ),
        (
            "fluxtune_reconciles_total{result=\"okay\"}",
            &[],
            "q: no fluxtune_reconciles_total{result=\"okay\"}",
        ),
        (
            "fluxtune_reconciles_total",
            &["namespace"],
            "q: fluxtune_reconciles_total has no label namespace",
        ),
        (
            "rate(fluxtune_reconciles_total[$interval])",
            &[],
            "q: not PromQL",
        ),
        ("vector(1)", &[], "q: queries no metric"),
    ] {
        let got = missing(&[query(promql, labels)], page);
        assert!(
            got.len() == 1 && got[0].starts_with(want),
            "{promql}: want {want:?}, got {got:?}"
        );
    }
    assert_eq!(
        missing(
            &[query(
                "fluxtune_profile_delivered / on (kind) fluxtune_reconciles_total",
                &[]
            )],
            page
        ),
        [
            "q: fluxtune_profile_delivered has no label kind",
            "q: fluxtune_reconciles_total has no label kind"
        ]
    );
    assert_eq!(
        parse_labels("namespace=\"a\",profile=\"p \\\"q\\\"\""),
        BTreeMap::from([
            ("namespace".to_string(), "a".to_string()),
            ("profile".to_string(), "p \"q\"".to_string())
        ])
    );
}

/// A validating webhook nobody serves, for the GitRepository of one profile: the API server
/// answers its apply with a 500 (failurePolicy Fail), a transient error fluxtune retries and counts.
fn unreachable_webhook(name: &str, ns: &str, profile: &str) -> Value {
    json!({
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingWebhookConfiguration",
        "metadata": {"name": name},
        "webhooks": [{
            "name": "unreachable.fluxtune.dev",
            "clientConfig": {"url": "https://127.0.0.1:1/validate"},
            "rules": [{"apiGroups": ["source.toolkit.fluxcd.io"], "apiVersions": ["*"],
                       "operations": ["CREATE", "UPDATE"], "resources": ["gitrepositories"]}],
            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": ns}},
            "objectSelector": {"matchLabels": {"fluxtune.dev/profile": profile}},
            "failurePolicy": "Fail",
            "sideEffects": "None",
            "admissionReviewVersions": ["v1"],
            "timeoutSeconds": 2
        }]
    })
}

#[tokio::test]
async fn every_metric_the_dashboard_and_alerts_query_is_on_metrics() {
    let dashboard = dashboard_queries();
    let rules = rule_queries();
    // Every panel and every alert was read: a walk that found nothing would pass any page.
    assert!(
        dashboard.len() >= 25,
        "{} dashboard queries",
        dashboard.len()
    );
    assert_eq!(rules.len(), 5, "the alerts");

    let client = support::client().await;
    let ns = support::namespace(&client, "monitoring").await;
    let webhooks: Api<ValidatingWebhookConfiguration> = Api::all(client.clone());
    let hook = format!("fluxtune-e2e-{ns}");
    webhooks
        .create(
            &PostParams::default(),
            &serde_json::from_value(unreachable_webhook(&hook, &ns, "broken")).unwrap(),
        )
        .await
        .expect("create the webhook configuration");

    let op = Operator::start(&ns, "op-a");
    op.wait_ready().await;
    for name in ["cluster1", "broken"] {
        let profile = json!({
            "apiVersion": "fluxtune.dev/v1alpha1",
            "kind": "FluxProfile",
            "metadata": {"name": name, "namespace": ns},
            "spec": {
                "cluster": {"name": name},
                // Nothing to fetch on the Flux tier: a closed local port, not a real host.
                "source": {"url": "https://127.0.0.1:1/acme/kubeconf.git"}
            }
        });
        support::apply_as(&client, "e2e-user", &profile)
            .await
            .expect("the profile is accepted");
    }
    // cluster1 reconciled (its status written, then its series), broken failed to; whether
    // Flux's controllers run and make cluster1's objects Ready makes no difference here.
    let metrics = eventually(
        "cluster1's series and broken's failed reconcile on /metrics",
        PATIENCE,
        || async {
            let m = op.metrics().await;
            let cluster1 = "profile=\"cluster1\"";
            let seen = |name: &str, label: &str| support::metric_opt(&m, name, label).is_some();
            let ready = seen("fluxtune_observed_latency_seconds_count", cluster1)
                && seen("fluxtune_latency_budget_seconds", cluster1)
                && seen("fluxtune_profile_delivered", cluster1)
                && support::metric_opt(&m, "fluxtune_reconcile_errors_total", "reason=\"api\"")
                    .is_some_and(|n| n > 0);
            ready.then_some(m)
        },
    )
    .await;
    webhooks
        .delete(&hook, &DeleteParams::default())
        .await
        .expect("delete the webhook configuration");

    let problems = missing(&dashboard, &metrics)
        .into_iter()
        .chain(missing(&rules, &metrics))
        .collect::<Vec<_>>();
    assert!(
        problems.is_empty(),
        "the monitoring components ask /metrics for what it does not have:\n{}\n\n/metrics:\n{metrics}",
        problems.join("\n")
    );
}
