//! Branches the real API server in e2e cannot be made to take, or not when a test needs it: a Flux
//! CRD missing (the e2e control plane installs them all), a profile that no longer deserializes
//! (the CRD schema refuses to store one), a server error during apply, a create refused by
//! mutating admission, and a watch event landing between a reconcile's reads. Each scenario
//! answers the operator's requests in order and asserts method, path and the status it writes.

use std::{
    collections::{BTreeMap, BTreeSet},
    sync::{Arc, atomic::AtomicBool},
};

use fluxtune::{
    api::FluxProfile,
    cache::ChildWriter,
    capabilities::FluxInstall,
    flux::FluxKind,
    metrics::Metrics,
    reconcile::{self, Context, Guarded},
    render::Capabilities,
};
use http::{Request, Response, StatusCode};
use kube::{
    Client,
    api::ApiResource,
    client::Body,
    core::DeserializeGuard,
    runtime::events::{Recorder, Reporter},
    runtime::watcher,
};
use serde_json::{Value, json};

type Handle = tower_test::mock::Handle<Request<Body>, Response<Body>>;

fn context(kinds: &[FluxKind]) -> (Arc<Context>, Handle) {
    let (ctx, handle, _) = context_with_caches(kinds);
    (ctx, handle)
}

/// As [`context`], with the writers of the child caches, which the test fills as watches would.
fn context_with_caches(
    kinds: &[FluxKind],
) -> (Arc<Context>, Handle, BTreeMap<FluxKind, ChildWriter>) {
    let (service, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let client = Client::new(service, "flux-system");
    let writers: BTreeMap<FluxKind, ChildWriter> = kinds
        .iter()
        .map(|&k| (k, ChildWriter::new(k.api_resource())))
        .collect();
    let children: BTreeMap<FluxKind, _> = writers.iter().map(|(&k, w)| (k, w.reader())).collect();
    let install = FluxInstall {
        kinds: kinds.iter().copied().collect::<BTreeSet<_>>(),
        caps: Capabilities::default(),
    };
    let recorder = Recorder::new(
        client.clone(),
        Reporter {
            controller: "fluxtune".into(),
            instance: None,
        },
    );
    let ctx = Context::new(
        client,
        install,
        children,
        Arc::new(Metrics::default()),
        recorder,
        Arc::new(AtomicBool::new(true)),
    );
    (Arc::new(ctx), handle, writers)
}

fn profile(spec: Value) -> Arc<Guarded> {
    let doc = json!({
        "apiVersion": "fluxtune.dev/v1alpha1", "kind": "FluxProfile",
        "metadata": {"name": "cluster1", "namespace": "flux-system", "uid": "u-1", "generation": 2},
        "spec": spec
    });
    Arc::new(serde_json::from_value::<DeserializeGuard<FluxProfile>>(doc).unwrap())
}

/// Answers the next request after checking its method and path; returns its JSON body.
async fn expect(
    handle: &mut Handle,
    method: &str,
    path: &str,
    status: StatusCode,
    reply: Value,
) -> Value {
    let (request, send) = handle
        .next_request()
        .await
        .expect("the operator sent a request");
    assert_eq!(request.method().as_str(), method, "{}", request.uri());
    assert!(
        request.uri().path().starts_with(path),
        "{method} {} is not {path}",
        request.uri()
    );
    let body = request.into_body().collect_bytes().await.unwrap();
    respond(send, status, &reply);
    serde_json::from_slice(&body).unwrap_or(Value::Null)
}

fn respond(
    send: tower_test::mock::SendResponse<Response<Body>>,
    status: StatusCode,
    reply: &Value,
) {
    send.send_response(
        Response::builder()
            .status(status)
            .body(Body::from(serde_json::to_vec(reply).unwrap()))
            .unwrap(),
    );
}

/// What the API server returns for a status patch: the whole profile.
fn stored_profile() -> Value {
    json!({"apiVersion": "fluxtune.dev/v1alpha1", "kind": "FluxProfile",
           "metadata": {"name": "cluster1", "namespace": "flux-system"},
           "spec": {"cluster": {"name": "cluster1"}, "source": {"url": "https://g/r.git"}}})
}

/// Before its first write, a reconcile of a profile that has children re-reads it (a list selected
/// by name): here it is neither deleting nor replaced.
async fn profile_is_live(api: &mut Handle) {
    expect(
        api,
        "GET",
        "/apis/fluxtune.dev/v1alpha1/namespaces/flux-system/fluxprofiles",
        StatusCode::OK,
        live_profile(),
    )
    .await;
}

/// The answer to that read: the profile, with the UID the reconcile started from.
fn live_profile() -> Value {
    json!({"apiVersion": "meta.k8s.io/v1", "kind": "PartialObjectMetadataList", "metadata": {},
           "items": [{"apiVersion": "meta.k8s.io/v1", "kind": "PartialObjectMetadata",
                      "metadata": {"name": "cluster1", "namespace": "flux-system", "uid": "u-1"}}]})
}

/// A reconcile of a new profile (no children yet) that renders a GitRepository and a
/// Kustomization.
async fn reconcile_source_and_kustomization() -> (
    tokio::task::JoinHandle<fluxtune::error::Result<kube::runtime::controller::Action>>,
    Handle,
) {
    let (ctx, api) = context(&[FluxKind::GitRepository, FluxKind::Kustomization]);
    let profile =
        profile(json!({"cluster": {"name": "cluster1"}, "source": {"url": "https://g/r.git"}}));
    let reconcile = tokio::spawn(reconcile::reconcile(profile, ctx));
    (reconcile, api)
}

/// Answers every request as the API server would a successful one (an applied object back, the
/// stored profile for its status) until the status write, which it returns. `untouched`: a path
/// no request may go to.
async fn answer_until_status(api: &mut Handle, untouched: Option<&str>) -> Value {
    loop {
        let (request, send) = api.next_request().await.expect("a request");
        let (method, path) = (
            request.method().to_string(),
            request.uri().path().to_string(),
        );
        assert!(
            untouched.is_none_or(|u| !path.starts_with(u)),
            "{method} {path}: must stay untouched"
        );
        let body = request.into_body().collect_bytes().await.unwrap();
        let reply = if path == STATUS {
            stored_profile()
        } else {
            echo_applied(FluxKind::Kustomization, "cluster1")
        };
        respond(send, StatusCode::OK, &reply);
        if path == STATUS {
            return serde_json::from_slice(&body).unwrap();
        }
    }
}

fn echo_applied(kind: FluxKind, name: &str) -> Value {
    let ar: ApiResource = kind.api_resource();
    json!({"apiVersion": ar.api_version, "kind": ar.kind, "metadata": {"name": name, "namespace": "flux-system"}})
}

fn condition<'a>(status_patch: &'a Value, type_: &str) -> &'a Value {
    status_patch["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == type_)
        .unwrap_or_else(|| panic!("no {type_} condition in {status_patch}"))
}

const GIT: &str =
    "/apis/source.toolkit.fluxcd.io/v1/namespaces/flux-system/gitrepositories/cluster1";
const KS: &str =
    "/apis/kustomize.toolkit.fluxcd.io/v1/namespaces/flux-system/kustomizations/cluster1";
const PROFILE: &str = "/apis/fluxtune.dev/v1alpha1/namespaces/flux-system/fluxprofiles/cluster1";
const STATUS: &str =
    "/apis/fluxtune.dev/v1alpha1/namespaces/flux-system/fluxprofiles/cluster1/status";
const EVENTS: &str = "/apis/events.k8s.io/v1/namespaces/flux-system/events";

#[tokio::test]
async fn a_missing_flux_crd_stalls_the_profile_but_the_rest_is_applied() {
    let (ctx, mut api) = context(&[FluxKind::GitRepository, FluxKind::Kustomization]);
    let profile = profile(json!({
        "cluster": {"name": "cluster1"},
        "source": {"url": "https://git.example.com/r.git"},
        "images": [{"name": "app", "repository": "ghcr.io/acme/app", "policy": {"semver": {"range": "*"}}}]
    }));
    let reconcile = tokio::spawn(reconcile::reconcile(profile, ctx));

    // A new profile: its first request is a write, create-only, not a read of the profile.
    for path in [GIT, KS] {
        let applied = expect(
            &mut api,
            "PATCH",
            path,
            StatusCode::OK,
            echo_applied(FluxKind::GitRepository, "cluster1"),
        )
        .await;
        assert_eq!(
            applied["metadata"]["labels"]["fluxtune.dev/profile"],
            "cluster1"
        );
        // Not in the cache, so not read first: created only if absent.
        assert_eq!(
            applied["metadata"]["resourceVersion"],
            fluxtune::reconcile::apply::ABSENT
        );
    }
    let applied_event = expect(&mut api, "POST", EVENTS, StatusCode::CREATED, json!({})).await;
    assert_eq!(applied_event["reason"], "Applied");
    let warning = expect(&mut api, "POST", EVENTS, StatusCode::CREATED, json!({})).await;
    assert_eq!(
        (warning["type"].as_str(), warning["reason"].as_str()),
        (Some("Warning"), Some("FluxCRDMissing"))
    );
    let status = expect(&mut api, "PATCH", STATUS, StatusCode::OK, stored_profile()).await;
    let stalled = condition(&status, "Stalled");
    assert_eq!(stalled["reason"], "FluxCRDMissing");
    let message = stalled["message"].as_str().unwrap();
    assert!(
        message.contains("imagepolicies.image.toolkit.fluxcd.io"),
        "{message}"
    );
    assert!(
        message.contains("imagerepositories.image.toolkit.fluxcd.io"),
        "{message}"
    );
    assert_eq!(
        status["status"]["inventory"].as_array().unwrap().len(),
        2,
        "only what was applied"
    );

    let action = reconcile
        .await
        .unwrap()
        .expect("a blocker is not an error to retry");
    // Rechecked rarely: no hot loop of 404s.
    assert_action(
        action,
        kube::runtime::controller::Action::requeue(std::time::Duration::from_secs(600)),
    );
}

#[tokio::test]
async fn a_profile_that_no_longer_deserializes_is_stalled_and_nothing_is_applied() {
    let (ctx, mut api) = context(&FluxKind::ALL);
    // As if stored by a fluxtune whose schema allowed a class this one does not know.
    let profile = profile(
        json!({"cluster": {"name": "cluster1"}, "source": {"url": "https://g/r.git"}, "pollingClass": "Turbo"}),
    );
    assert!(profile.0.is_err());
    let reconcile = tokio::spawn(reconcile::reconcile(profile.clone(), ctx.clone()));

    // The stored status is read raw first: the report keeps every field it does not change.
    let mut stored = stored_profile();
    stored["status"] = json!({
        "observedGeneration": 1,
        "inventory": [{"apiVersion": "source.toolkit.fluxcd.io/v1", "kind": "GitRepository", "name": "cluster1"}],
        "latencyBudget": {"imageToDeploy": {"expected": "40s", "worst": "1m13s"},
                          "commitToDeploy": {"expected": "10s", "worst": "10s"}, "processing": "10s"},
        "conditions": [{"type": "Ready", "status": "True", "reason": "ReconciliationSucceeded",
                        "message": "2 Flux objects up to date", "lastTransitionTime": "2026-01-01T00:00:00Z"}]
    });
    expect(&mut api, "GET", PROFILE, StatusCode::OK, stored.clone()).await;
    let status = expect(&mut api, "PATCH", STATUS, StatusCode::OK, stored_profile()).await;
    assert_eq!(status["status"]["inventory"], stored["status"]["inventory"]);
    assert_eq!(
        status["status"]["latencyBudget"],
        stored["status"]["latencyBudget"]
    );
    assert_eq!(status["status"]["observedGeneration"], 2);
    let stalled = condition(&status, "Stalled");
    assert_eq!(
        (stalled["status"].as_str(), stalled["reason"].as_str()),
        (Some("True"), Some("InvalidSpec"))
    );
    assert!(
        stalled["message"].as_str().unwrap().contains("Turbo"),
        "{stalled}"
    );
    assert_eq!(condition(&status, "Ready")["status"], "False");
    reconcile.await.unwrap().unwrap();
    // The status write wakes the profile again: the same generation and error are not rewritten.
    // A request would wait for an answer that never comes, so a second write shows as a timeout.
    tokio::time::timeout(
        std::time::Duration::from_secs(5),
        reconcile::reconcile(profile, ctx),
    )
    .await
    .expect("the second reconcile sent a request")
    .unwrap();
    // The context (and its client) is gone: no apply, prune, event or second write followed.
    assert!(
        api.next_request().await.is_none(),
        "nothing else may be sent"
    );
}

/// Mutating admission runs before the API server compares resourceVersions: a create-only write
/// can be refused for good although the object exists. When it is someone else's, that is a
/// conflict that holds what depends on it, not a refusal of fluxtune's object (which would let
/// the Kustomization be applied to the other team's GitRepository).
#[tokio::test]
async fn a_refused_create_of_an_existing_foreign_object_is_a_conflict() {
    let (reconcile, mut api) = reconcile_source_and_kustomization().await;
    let denied = json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "Forbidden", "code": 403,
                        "message": "admission webhook \"policy.example.com\" denied the request"});
    let create = expect(&mut api, "PATCH", GIT, StatusCode::FORBIDDEN, denied).await;
    assert_eq!(
        create["metadata"]["resourceVersion"],
        fluxtune::reconcile::apply::ABSENT
    );
    let theirs = json!({"apiVersion": "source.toolkit.fluxcd.io/v1", "kind": "GitRepository",
                        "metadata": {"name": "cluster1", "namespace": "flux-system", "uid": "other",
                                     "resourceVersion": "7"},
                        "spec": {"url": "https://g/theirs.git"}});
    expect(&mut api, "GET", GIT, StatusCode::OK, theirs).await;
    // No write to the Kustomization: it is held while its source is someone else's.
    let status = answer_until_status(&mut api, Some(KS)).await;
    let ready = condition(&status, "Ready");
    assert_eq!(ready["reason"], "NameConflict", "{status}");
    assert!(
        ready["message"]
            .as_str()
            .unwrap()
            .contains("was not created by fluxtune"),
        "{status}"
    );
    reconcile
        .await
        .unwrap()
        .expect("a conflict is a blocker, not an error to retry");
}

/// A revision the GitRepository fetched while a reconcile ran (between its read of the children
/// before its writes and its status write) is not recorded by that reconcile: the next one, which
/// the watch event queues, judges it. Recorded now, it would never be judged (a missed webhook
/// went unnoticed this way when the recorded revision had no trigger: the source's first).
#[tokio::test]
async fn a_revision_fetched_during_a_reconcile_is_left_for_the_next_to_judge() {
    let (ctx, mut api, mut caches) =
        context_with_caches(&[FluxKind::GitRepository, FluxKind::Kustomization]);
    let git = |revision: &str, resource_version: &str| -> kube::api::DynamicObject {
        serde_json::from_value(json!({
            "apiVersion": "source.toolkit.fluxcd.io/v1", "kind": "GitRepository",
            "metadata": {"name": "cluster1", "namespace": "flux-system", "uid": "g-1",
                         "resourceVersion": resource_version,
                         "labels": {"app.kubernetes.io/managed-by": "fluxtune",
                                    "fluxtune.dev/profile": "cluster1"},
                         "ownerReferences": [{"apiVersion": "fluxtune.dev/v1alpha1",
                             "kind": "FluxProfile", "name": "cluster1", "uid": "u-1",
                             "controller": true}]},
            "spec": {"interval": "5m", "url": "https://g/r.git"},
            "status": {"artifact": {"revision": revision,
                                    "lastUpdateTime": "2026-12-03T10:00:00Z"}}
        }))
        .unwrap()
    };
    let source = caches.get_mut(&FluxKind::GitRepository).unwrap();
    source.apply(&watcher::Event::Apply(git("main@sha1:a", "1")));
    let profile = Arc::new(
        serde_json::from_value::<Guarded>(json!({
            "apiVersion": "fluxtune.dev/v1alpha1", "kind": "FluxProfile",
            "metadata": {"name": "cluster1", "namespace": "flux-system", "uid": "u-1",
                         "generation": 2},
            "spec": {"cluster": {"name": "cluster1"}, "source": {"url": "https://g/r.git"}},
            // The source's first revision: recorded without a trigger.
            "status": {"delivery": {"sourceRevision": "main@sha1:a"}}
        }))
        .unwrap(),
    );
    let reconcile = tokio::spawn(reconcile::reconcile(profile, ctx));

    // The reconcile has read the children; before its first write, the fetch lands in the cache.
    let (request, send) = api.next_request().await.expect("the liveness read");
    assert_eq!(request.method(), "GET", "{}", request.uri());
    let source = caches.get_mut(&FluxKind::GitRepository).unwrap();
    source.apply(&watcher::Event::Apply(git("main@sha1:b", "2")));
    respond(send, StatusCode::OK, &live_profile());
    let status = answer_until_status(&mut api, None).await;
    assert_eq!(
        status["status"]["delivery"]["sourceRevision"], "main@sha1:a",
        "{status}"
    );
    reconcile.await.unwrap().unwrap();
}

/// An applied object as the API server stores it: with its UID and resourceVersion ("5").
fn stored(mut applied: Value) -> Value {
    applied["metadata"]["uid"] = json!("g-1");
    applied["metadata"]["resourceVersion"] = json!("5");
    applied
}

/// `Action` has no `PartialEq`: compared by its debug form.
fn assert_action(
    action: kube::runtime::controller::Action,
    want: kube::runtime::controller::Action,
) {
    assert_eq!(format!("{action:?}"), format!("{want:?}"));
}

fn not_found() -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "NotFound",
           "code": 404, "message": "not found"})
}

fn conflict() -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "Conflict",
           "code": 409, "message": "the object has been modified"})
}

/// A create-only write refused because the object exists (409): the object is read and judged.
/// Here it turns out fluxtune's own and as rendered (created by a reconcile whose watch event has
/// not arrived yet): nothing is written again.
#[tokio::test]
async fn a_refused_create_of_our_own_up_to_date_object_writes_nothing_more() {
    let (reconcile, mut api) = reconcile_source_and_kustomization().await;
    let applied = expect(&mut api, "PATCH", GIT, StatusCode::CONFLICT, conflict()).await;
    expect(&mut api, "GET", GIT, StatusCode::OK, stored(applied)).await;
    let status = answer_until_status(&mut api, Some(GIT)).await;
    assert_eq!(condition(&status, "Applied")["status"], "True", "{status}");
    reconcile.await.unwrap().unwrap();
}

/// A 409 for an object that is gone by the time it is read (deleted in between): created again,
/// create-only as before.
#[tokio::test]
async fn a_refused_create_of_an_object_deleted_since_is_tried_again_as_a_create() {
    let (reconcile, mut api) = reconcile_source_and_kustomization().await;
    expect(&mut api, "PATCH", GIT, StatusCode::CONFLICT, conflict()).await;
    expect(&mut api, "GET", GIT, StatusCode::NOT_FOUND, not_found()).await;
    let again = expect(
        &mut api,
        "PATCH",
        GIT,
        StatusCode::OK,
        echo_applied(FluxKind::GitRepository, "cluster1"),
    )
    .await;
    assert_eq!(
        again["metadata"]["resourceVersion"],
        fluxtune::reconcile::apply::ABSENT
    );
    let status = answer_until_status(&mut api, None).await;
    assert_eq!(condition(&status, "Applied")["status"], "True", "{status}");
    reconcile.await.unwrap().unwrap();
}

/// Refused twice (the object changes under every read): a transient error the controller retries
/// with backoff, not a loop of writes within one reconcile, and not a refusal reported as final.
#[tokio::test]
async fn a_write_refused_twice_is_retried_later() {
    let (reconcile, mut api) = reconcile_source_and_kustomization().await;
    let applied = expect(&mut api, "PATCH", GIT, StatusCode::CONFLICT, conflict()).await;
    let mut ours = stored(applied);
    // Someone else changed a field fluxtune sets: the object is ours but not as rendered.
    ours["spec"]["interval"] = json!("1s");
    expect(&mut api, "GET", GIT, StatusCode::OK, ours).await;
    let second = expect(&mut api, "PATCH", GIT, StatusCode::CONFLICT, conflict()).await;
    assert_eq!(
        second["metadata"]["resourceVersion"], "5",
        "the version it read"
    );
    let status = answer_until_status(&mut api, Some(GIT)).await;
    let ready = condition(&status, "Ready");
    assert_eq!(ready["reason"], "ReconciliationFailed", "{status}");
    reconcile
        .await
        .unwrap()
        .expect_err("a conflict that persists is retried with backoff");
}

#[tokio::test]
async fn a_server_error_during_apply_is_reported_and_retried() {
    let (ctx, mut api) = context(&FluxKind::ALL);
    let profile =
        profile(json!({"cluster": {"name": "cluster1"}, "source": {"url": "https://g/r.git"}}));
    let reconcile = tokio::spawn(reconcile::reconcile(profile.clone(), ctx.clone()));

    let failure = json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "InternalError", "code": 500, "message": "etcdserver: request timed out"});
    expect(
        &mut api,
        "PATCH",
        GIT,
        StatusCode::INTERNAL_SERVER_ERROR,
        failure,
    )
    .await;
    let status = expect(&mut api, "PATCH", STATUS, StatusCode::OK, stored_profile()).await;
    let ready = condition(&status, "Ready");
    assert_eq!(
        (ready["status"].as_str(), ready["reason"].as_str()),
        (Some("False"), Some("ReconciliationFailed"))
    );
    assert!(
        ready["message"]
            .as_str()
            .unwrap()
            .contains("etcdserver: request timed out")
    );
    assert_eq!(condition(&status, "Reconciling")["status"], "True");

    let error = reconcile
        .await
        .unwrap()
        .expect_err("a server error is retried");
    // Backoff grows per profile: 5s, then 10s.
    let first = reconcile::error_policy(profile.clone(), &error, ctx.clone());
    let second = reconcile::error_policy(profile.clone(), &error, ctx.clone());
    assert_ne!(format!("{first:?}"), format!("{second:?}"));
    // Deleted (and created again under the same name): nothing of the old one is kept.
    ctx.forget_profile("flux-system", "cluster1");
    let again = reconcile::error_policy(profile, &error, ctx);
    assert_eq!(format!("{again:?}"), format!("{first:?}"));
}

/// The delete of a pruned object carries the UID and resourceVersion its ownership was checked
/// on; an object changed in between (409) is skipped, kept in the inventory and looked at again
/// shortly. A real API server cannot be made to change an object inside that window on cue.
#[tokio::test]
async fn prune_deletes_with_preconditions_and_keeps_what_changed_in_between() {
    let (ctx, mut api) = context(&FluxKind::ALL);
    const OLD: &str =
        "/apis/image.toolkit.fluxcd.io/v1/namespaces/flux-system/imagerepositories/cluster1-old";
    let doc = json!({
        "apiVersion": "fluxtune.dev/v1alpha1", "kind": "FluxProfile",
        "metadata": {"name": "cluster1", "namespace": "flux-system", "uid": "u-1", "generation": 3},
        "spec": {"cluster": {"name": "cluster1"}, "source": {"url": "https://g/r.git"}},
        "status": {"inventory": [
            {"apiVersion": "image.toolkit.fluxcd.io/v1", "kind": "ImageRepository", "name": "cluster1-old"}]}
    });
    let profile = Arc::new(serde_json::from_value::<DeserializeGuard<FluxProfile>>(doc).unwrap());
    let reconcile = tokio::spawn(reconcile::reconcile(profile, ctx));
    for path in [GIT, KS] {
        if path == GIT {
            profile_is_live(&mut api).await;
        }
        expect(
            &mut api,
            "PATCH",
            path,
            StatusCode::OK,
            echo_applied(FluxKind::GitRepository, "cluster1"),
        )
        .await;
    }
    let owned = json!({"apiVersion": "image.toolkit.fluxcd.io/v1", "kind": "ImageRepository",
        "metadata": {"name": "cluster1-old", "namespace": "flux-system", "uid": "ir-1", "resourceVersion": "42",
                     "ownerReferences": [{"apiVersion": "fluxtune.dev/v1alpha1", "kind": "FluxProfile",
                                          "name": "cluster1", "uid": "u-1", "controller": true}]}});
    expect(&mut api, "GET", OLD, StatusCode::OK, owned).await;
    let conflict = json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "Conflict", "code": 409,
        "message": "Precondition failed: UID in precondition: ir-1, UID in object meta: ir-2"});
    let delete = expect(&mut api, "DELETE", OLD, StatusCode::CONFLICT, conflict).await;
    assert_eq!(
        delete["preconditions"],
        json!({"uid": "ir-1", "resourceVersion": "42"})
    );
    expect(&mut api, "POST", EVENTS, StatusCode::CREATED, json!({})).await;
    let status = expect(&mut api, "PATCH", STATUS, StatusCode::OK, stored_profile()).await;
    let inventory: Vec<_> = status["status"]["inventory"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(inventory, ["cluster1", "cluster1", "cluster1-old"]);
    let action = reconcile.await.unwrap().unwrap();
    assert_action(
        action,
        kube::runtime::controller::Action::requeue(std::time::Duration::from_secs(5)),
    );
}

/// A GitRepository of the profile, as the watch of labelled objects delivers it: `owned` with the
/// profile's controller reference (else orphaned, as `--cascade=orphan` leaves it).
fn cached_git(owned: bool, resource_version: &str) -> Value {
    let mut git = json!({
        "apiVersion": "source.toolkit.fluxcd.io/v1", "kind": "GitRepository",
        "metadata": {"name": "cluster1", "namespace": "flux-system", "uid": "g-1",
                     "resourceVersion": resource_version,
                     "labels": {"app.kubernetes.io/managed-by": "fluxtune",
                                "fluxtune.dev/profile": "cluster1"}},
        // Not as rendered: the pass writes it.
        "spec": {"interval": "1s", "url": "https://g/r.git"}
    });
    if owned {
        git["metadata"]["ownerReferences"] = json!([{"apiVersion": "fluxtune.dev/v1alpha1",
            "kind": "FluxProfile", "name": "cluster1", "uid": "u-1", "controller": true}]);
    }
    git
}

/// `kubectl delete --cascade=orphan` while a pass runs: the collector removes the owner reference
/// between the pass's read of the profile and its write, whose resourceVersion is refused. The
/// object read again is adoptable, and an adoption puts the reference back: the profile is read
/// again right before it, found being deleted, and nothing is written. (Read only once per pass,
/// the adoption went ahead and the collector then deleted the orphaned child.)
#[tokio::test]
async fn an_object_orphaned_during_the_pass_is_not_adopted_back_by_a_deleting_profile() {
    let (ctx, mut api, mut caches) =
        context_with_caches(&[FluxKind::GitRepository, FluxKind::Kustomization]);
    let git = serde_json::from_value(cached_git(true, "1")).unwrap();
    caches
        .get_mut(&FluxKind::GitRepository)
        .unwrap()
        .apply(&watcher::Event::Apply(git));
    let profile =
        profile(json!({"cluster": {"name": "cluster1"}, "source": {"url": "https://g/r.git"}}));
    let reconcile = tokio::spawn(reconcile::reconcile(profile, ctx));

    profile_is_live(&mut api).await;
    let update = expect(&mut api, "PATCH", GIT, StatusCode::CONFLICT, conflict()).await;
    assert_eq!(
        update["metadata"]["resourceVersion"], "1",
        "the version judged"
    );
    expect(&mut api, "GET", GIT, StatusCode::OK, cached_git(false, "2")).await;
    let mut deleting = live_profile();
    deleting["items"][0]["metadata"]["deletionTimestamp"] = json!("2026-12-03T10:00:00Z");
    expect(
        &mut api,
        "GET",
        "/apis/fluxtune.dev/v1alpha1/namespaces/flux-system/fluxprofiles",
        StatusCode::OK,
        deleting,
    )
    .await;
    let action = reconcile.await.unwrap().unwrap();
    assert_action(action, kube::runtime::controller::Action::await_change());
    assert!(
        api.next_request().await.is_none(),
        "nothing may be written for a profile being deleted"
    );
}

/// A new profile is written without a read of it first; deleted meanwhile, its status write finds
/// it gone (404): the reconcile ends quietly, not as an error to retry, and its deletion event
/// comes next.
#[tokio::test]
async fn a_new_profile_deleted_during_its_first_pass_ends_at_the_status_write() {
    let (reconcile, mut api) = reconcile_source_and_kustomization().await;
    loop {
        let (request, send) = api.next_request().await.expect("a request");
        let path = request.uri().path().to_string();
        assert_ne!(
            (request.method().as_str(), path.as_str()),
            (
                "GET",
                "/apis/fluxtune.dev/v1alpha1/namespaces/flux-system/fluxprofiles"
            ),
            "a new profile is not read before its writes"
        );
        if path == STATUS {
            respond(send, StatusCode::NOT_FOUND, &not_found());
            break;
        }
        respond(
            send,
            StatusCode::OK,
            &echo_applied(FluxKind::Kustomization, "cluster1"),
        );
    }
    let action = reconcile
        .await
        .unwrap()
        .expect("a profile deleted meanwhile is not an error");
    assert_action(action, kube::runtime::controller::Action::await_change());
}
