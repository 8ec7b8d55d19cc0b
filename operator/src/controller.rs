//! `fluxtune run`: wires the watches, leader election, the HTTP endpoints and the reconciler.

use std::{
    collections::{BTreeMap, HashMap},
    hash::{DefaultHasher, Hash, Hasher},
    net::SocketAddr,
    sync::{Arc, atomic::Ordering},
};

use futures::{StreamExt, future};
use kube::{
    Api, Client, Config, ResourceExt,
    api::DynamicObject,
    runtime::{
        Controller, WatchStreamExt,
        events::{Recorder, Reporter},
        reflector, watcher,
    },
};
use tracing::{info, warn};

use crate::{
    capabilities,
    error::{Error, Result},
    flux::FluxKind,
    http::{self, Health},
    leader::Leadership,
    metrics::{MethodLabels, Metrics},
    reconcile::{self, Context, Guarded},
    render::names,
};

#[derive(Clone, Debug)]
pub struct RunOptions {
    /// Watch one namespace instead of all.
    pub namespace: Option<String>,
    pub http_addr: SocketAddr,
    pub leader_election: bool,
    pub lease_namespace: String,
    pub lease_name: String,
    pub identity: String,
    pub tenancy: crate::tenancy::Tenancy,
}

pub async fn run(opts: RunOptions) -> Result<()> {
    let metrics = Arc::new(Metrics::default());
    let client = counting_client(metrics.clone()).await?;
    let health = Health {
        metrics: metrics.clone(),
        ready: Arc::default(),
    };
    let (stop_http, http_stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(http::serve(opts.http_addr, health.clone(), async {
        let _ = http_stopped.await;
    }));

    let install = capabilities::detect(&client).await?;
    let leadership = if opts.leader_election {
        // A standby replica is healthy and ready; it only does not reconcile.
        health.ready.store(true, Ordering::Relaxed);
        let lease = Leadership::acquire(
            client.clone(),
            &opts.lease_namespace,
            &opts.lease_name,
            &opts.identity,
        );
        Some(lease.await?)
    } else {
        None
    };

    let controller = controllers(client, install, metrics, &opts, health.clone());
    let result = match leadership {
        Some(mut leadership) => {
            let result = tokio::select! {
                r = controller => r,
                _ = leadership.lost() => Err(Error::LostLeadership),
            };
            leadership.release().await;
            result
        }
        None => controller.await,
    };
    let _ = stop_http.send(());
    let _ = server.await;
    result
}

/// The controller for the Flux install found, started afresh whenever the install changes (Flux
/// installed or upgraded after fluxtune): it watches and caches each installed kind, so a new
/// kind needs a new controller. Profiles are all reconciled again at the start; the ones already
/// as rendered cost no write.
async fn controllers(
    client: Client,
    mut install: capabilities::FluxInstall,
    metrics: Arc<Metrics>,
    opts: &RunOptions,
    health: Health,
) -> Result<()> {
    loop {
        let running = controller(
            client.clone(),
            install.clone(),
            metrics.clone(),
            opts,
            health.clone(),
        );
        tokio::select! {
            result = running => return result,
            changed = capabilities::changed(&client, &install) => {
                let changed = changed?;
                info!(
                    before = ?install.kinds,
                    after = ?changed.kinds,
                    sparse_checkout = changed.caps.sparse_checkout,
                    "the Flux CRDs changed: restarting the controller with them"
                );
                install = changed;
            }
        }
    }
}

async fn controller(
    client: Client,
    install: capabilities::FluxInstall,
    metrics: Arc<Metrics>,
    opts: &RunOptions,
    health: Health,
) -> Result<()> {
    let profiles: Api<Guarded> = scoped(&client, &opts.namespace);
    // A profile deleted outright (no finalizer) is never reconciled again: its Delete event is
    // where its metric series go.
    let (profile_store, writer) = reflector::store();
    let forget = metrics.clone();
    let profile_events = watcher(profiles, watcher::Config::default().any_semantic())
        .default_backoff()
        .reflect(writer)
        .inspect(move |event| {
            if let Ok(watcher::Event::Delete(p)) = event {
                forget.forget_profile(&p.namespace().unwrap_or_default(), &p.name_any());
            }
        })
        .applied_objects();
    let mut controller = Controller::for_stream(profile_events, profile_store);

    let mut children = BTreeMap::new();
    for &kind in &install.kinds {
        let ar = kind.api_resource();
        let api: Api<DynamicObject> = match &opts.namespace {
            Some(ns) => Api::namespaced_with(client.clone(), ns, &ar),
            None => Api::all_with(client.clone(), &ar),
        };
        let writer = reflector::store::Writer::new(ar.clone());
        let reader = writer.as_reader();
        let config = watcher::Config::default()
            .labels(&format!(
                "{}={}",
                names::MANAGED_BY_LABEL,
                names::MANAGED_BY
            ))
            .any_semantic();
        let stream = reflector::reflector(writer, watcher(api, config))
            .default_backoff()
            .filter_map(only_changes_that_matter(kind));
        controller = controller.owns_stream_with(stream, ar);
        children.insert(kind, reader);
    }

    // The caches fill once the controller polls their watches; ready means filled.
    let stores: Vec<_> = children.iter().map(|(k, s)| (*k, s.clone())).collect();
    let caches_ready = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let filled = caches_ready.clone();
    tokio::spawn(async move {
        for (kind, store) in stores {
            if store.wait_until_ready().await.is_err() {
                warn!(
                    kind = kind.kind(),
                    "a Flux object cache closed before it was filled"
                );
                return;
            }
            tracing::debug!(kind = kind.kind(), "cache filled");
        }
        filled.store(true, Ordering::Relaxed);
        health.ready.store(true, Ordering::Relaxed);
    });

    let recorder = Recorder::new(
        client.clone(),
        Reporter {
            controller: "fluxtune".into(),
            instance: Some(opts.identity.clone()),
        },
    );
    let mut ctx = Context::new(client, install, children, metrics, recorder, caches_ready);
    ctx.tenancy = opts.tenancy.clone();
    let ctx = Arc::new(ctx);
    info!(
        namespace = opts.namespace.as_deref().unwrap_or("<all>"),
        "reconciling FluxProfiles"
    );
    controller
        .shutdown_on_signal()
        .run(reconcile::reconcile, reconcile::error_policy, ctx)
        .for_each(|result| {
            if let Err(e) = result {
                tracing::debug!(error = %e, "reconcile queue");
            }
            future::ready(())
        })
        .await;
    Ok(())
}

fn scoped<K>(client: &Client, namespace: &Option<String>) -> Api<K>
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>,
{
    match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

/// Owned objects trigger their profile only when someone changes their spec (generation) or
/// metadata, or deletes them, or (a Receiver) notification-controller publishes its webhook path
/// or a Ready change: an ImageRepository's status changes every scan and must not.
/// (Not kube's `predicate_filter`: it sees objects, not events, so it would drop the Delete of an
/// object whose last state matches what it saw before, and it has no owner-references predicate.)
type WatchEvent = Result<watcher::Event<DynamicObject>, watcher::Error>;
type Trigger = future::Ready<Option<Result<DynamicObject, watcher::Error>>>;

fn only_changes_that_matter(kind: FluxKind) -> impl FnMut(WatchEvent) -> Trigger {
    let mut seen: HashMap<(Option<String>, String), u64> = HashMap::new();
    move |event| {
        let passed = match event {
            Err(e) => Some(Err(e)),
            Ok(watcher::Event::Delete(obj)) => {
                seen.remove(&(obj.namespace(), obj.name_any()));
                Some(Ok(obj))
            }
            Ok(watcher::Event::Apply(obj) | watcher::Event::InitApply(obj)) => {
                let mut h = DefaultHasher::new();
                obj.metadata.generation.hash(&mut h);
                obj.metadata.labels.hash(&mut h);
                obj.metadata.annotations.hash(&mut h);
                format!("{:?}", obj.metadata.owner_references).hash(&mut h);
                obj.metadata.deletion_timestamp.is_some().hash(&mut h);
                crate::reconcile::status_that_wakes(kind, &obj).hash(&mut h);
                let fingerprint = h.finish();
                let key = (obj.namespace(), obj.name_any());
                (seen.insert(key, fingerprint) != Some(fingerprint)).then_some(Ok(obj))
            }
            Ok(watcher::Event::Init | watcher::Event::InitDone) => None,
        };
        future::ready(passed)
    }
}

/// A client that counts every request by HTTP method, so "a no-op reconcile writes nothing" is
/// observable on /metrics.
async fn counting_client(metrics: Arc<Metrics>) -> Result<Client> {
    let config = Config::infer()
        .await
        .map_err(|e| Error::Config(e.to_string()))?;
    let count =
        tower::util::MapRequestLayer::new(move |req: ::http::Request<kube::client::Body>| {
            metrics
                .kube_requests
                .get_or_create(&MethodLabels {
                    method: req.method().to_string(),
                })
                .inc();
            req
        });
    Ok(kube::client::ClientBuilder::try_from(config)
        .map_err(|e| Error::Config(e.to_string()))?
        .with_layer(&count)
        .build())
}
