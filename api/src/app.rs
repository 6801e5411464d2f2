//! Building and running the server: `Application::build(config).await?.run_until_stopped(..)`.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use nve_config::{Loaded, Profile};
use nve_migration::{Migrator, MigratorTrait};
use nve_worker::storage::Storage;
use poem::endpoint::BoxEndpoint;
use poem::listener::{Acceptor, AcceptorExt, Listener, TcpListener};
use poem::{EndpointExt, IntoEndpoint, Route, Server, get};

use crate::auth::limiter::RateLimiter;
use crate::auth::tokens::JwtKeys;
use crate::collab::hub::Hub;
use crate::collab::service::Collab;
use crate::error::ProblemMiddleware;
use crate::routes;
use crate::state::AppState;
use crate::telemetry::RequestContext;
use nve_pipelines::timeline::TimelineLimits;

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("could not prepare the JWT secret in the data directory: {0}")]
    Secret(#[source] std::io::Error),
    #[error("auth.jwt_secret is unusable: {0}")]
    Jwt(String),
    #[error("auth.jwt_secret is not set")]
    MissingSecret,
    #[error(transparent)]
    Worker(#[from] nve_worker::WorkerError),
    #[error("migrations: {0}")]
    Migrations(#[from] sea_orm::DbErr),
    #[error(
        "{0} database migration(s) pending and auto-migrate is off in the `{1}` profile; run `nve migrate up` first (the runbook does this before a rollout)"
    )]
    PendingMigrations(usize, Profile),
    #[error("could not listen on {addr}: {source}")]
    Bind {
        addr: String,
        #[source]
        source: std::io::Error,
    },
}

impl StartError {
    /// Exit status for the CLI: 3 for "migrate first", 1 for anything else.
    pub fn exit_code(&self) -> u8 {
        match self {
            StartError::PendingMigrations(..) => 3,
            _ => 1,
        }
    }
}

pub struct Application {
    acceptor: poem::listener::BoxAcceptor,
    addr: SocketAddr,
    app: BoxEndpoint<'static>,
    grace: Duration,
    state: AppState,
    /// Workers inside this process (embedded mode, or `jobs.embedded_workers`).
    runtime: Option<nve_worker::runtime::RuntimeHandle>,
}

impl Application {
    pub async fn build(loaded: Loaded) -> Result<Self, StartError> {
        let Loaded {
            profile,
            mut config,
            ..
        } = loaded;
        if profile == Profile::Dev {
            nve_config::ensure_dev_jwt_secret(&mut config).map_err(StartError::Secret)?;
        }
        let secret = config
            .auth
            .jwt_secret
            .clone()
            .ok_or(StartError::MissingSecret)?;

        let db = nve_worker::db::connect(&config).await?;
        let pending = Migrator::get_pending_migrations(&db).await?.len();
        if pending > 0 {
            if config.database.auto_migrate {
                tracing::info!(pending, "applying database migrations");
                Migrator::up(&db, None).await?;
            } else {
                return Err(StartError::PendingMigrations(pending, profile));
            }
        }
        let storage = Storage::open(&config)?;

        // Surface a missing plugin at boot; /readyz keeps reporting it until it is installed.
        match tokio::task::spawn_blocking(nve_pipelines::elements::inventory).await {
            Ok(Ok(inv)) => match inv.missing_summary() {
                Some(missing) => tracing::warn!(%missing, "GStreamer is incomplete"),
                None => tracing::info!(version = %inv.version, "GStreamer ready"),
            },
            Ok(Err(e)) => tracing::warn!(error = %e, "GStreamer unavailable"),
            Err(e) => tracing::warn!(error = %e, "GStreamer check panicked"),
        }

        // Distributed deployments fan events out through Redis; embedded ones in-process.
        let hub = match (&config.queue.backend, &config.queue.redis_url) {
            (nve_config::QueueBackend::Redis, Some(url)) => {
                Hub::redis(url.expose(), &config.queue.redis_prefix)
                    .await
                    .map_err(|e| {
                        StartError::Worker(nve_worker::WorkerError::Queue(e.to_string()))
                    })?
            }
            _ => Hub::in_process(),
        };
        let t = &config.timeline;
        let limits = TimelineLimits {
            max_tracks: t.max_tracks,
            max_clips: t.max_clips,
            max_keyframes_per_clip: t.max_keyframes_per_clip,
            max_effects_per_clip: t.max_effects_per_clip,
            max_title_chars: t.max_title_chars,
            max_duration: Duration::from_secs(t.max_duration_secs),
            strict_grid: t.strict_grid,
        };
        let dispatcher = match (&config.queue.backend, &config.queue.redis_url) {
            (nve_config::QueueBackend::Redis, Some(url)) => {
                nve_worker::dispatch::Dispatcher::redis(
                    url.expose(),
                    &config.queue.redis_prefix,
                    config.jobs.redis_backlog,
                )
                .await
                .map_err(|e| StartError::Worker(nve_worker::WorkerError::Queue(e.to_string())))?
            }
            _ => nve_worker::dispatch::Dispatcher::local(),
        };
        nve_worker::install_tls_provider();
        let webhook_key = Arc::new(secret.expose().as_bytes().to_vec());
        let runtime = if config.jobs.embedded_workers {
            let child = match config.jobs.child_program.clone() {
                Some(p) => Ok(p),
                None => std::env::current_exe(),
            }
            .map_err(|e| {
                StartError::Worker(nve_worker::WorkerError::Queue(format!(
                    "cannot locate this program for isolated children: {e}"
                )))
            })?;
            let settings = nve_worker::runtime::Settings::from_config(
                &config,
                vec![
                    (nve_worker::jobs::Queue::Edit, config.jobs.edit_concurrency),
                    (
                        nve_worker::jobs::Queue::Render,
                        config.jobs.render_concurrency,
                    ),
                ],
                child,
                storage.clone(),
            );
            let webhooks = nve_worker::webhooks::Webhooks::new(
                db.clone(),
                nve_worker::runtime::webhook_settings(&config, &webhook_key),
            );
            tracing::info!(owner = %settings.owner, "starting embedded workers");
            Some(
                nve_worker::runtime::Runtime::new(
                    db.clone(),
                    dispatcher.clone(),
                    Arc::new(hub.clone()),
                    settings,
                    Some(webhooks),
                )
                .start(),
            )
        } else {
            None
        };
        let collab = Collab::new(db.clone(), hub, limits);
        let service = routes::service(config.server.public_url.as_deref());
        let spec = routes::with_timeline_schemas(&service.spec());
        let route_map = routes::route_templates(&spec);
        let state = AppState {
            db,
            jwt: Arc::new(
                JwtKeys::new(
                    secret.expose().as_bytes(),
                    &config.auth.jwt_issuer,
                    &config.auth.jwt_audience,
                    config.auth.access_token_ttl_secs,
                )
                .map_err(StartError::Jwt)?,
            ),
            limiter: Arc::new(RateLimiter::default()),
            storage,
            collab,
            dispatcher,
            webhook_key,
            routes: Arc::new(route_map),
            profile,
            config: Arc::new(config),
        };

        let mut route = Route::new()
            .at("/healthz", get(routes::ops::healthz))
            .at("/readyz", get(routes::ops::readyz))
            .at("/metrics", get(routes::ops::metrics))
            .at("/openapi.json", routes::ops::spec_endpoint(spec));
        if state.config.server.docs {
            route = route.nest("/docs", service.swagger_ui());
        }
        let v1 = crate::collab::live::V1 {
            api: service.into_endpoint(),
            live: crate::collab::live::live,
        };
        let route = crate::ui::mount(route.nest("/v1", v1), &state.config);
        let app = route
            .with(ProblemMiddleware)
            .with(RequestContext)
            .data(state.clone())
            .boxed();

        let bind = state.config.server.bind.clone();
        let acceptor = TcpListener::bind(bind.clone())
            .into_acceptor()
            .await
            .map_err(|source| StartError::Bind {
                addr: bind.clone(),
                source,
            })?;
        let addr = acceptor
            .local_addr()
            .first()
            .and_then(|a| a.as_socket_addr().copied())
            .ok_or_else(|| StartError::Bind {
                addr: bind,
                source: std::io::Error::other("listener has no socket address"),
            })?;
        crate::metrics::handle();
        Ok(Self {
            acceptor: NoDelay(acceptor).boxed(),
            addr,
            app,
            grace: Duration::from_secs(state.config.server.shutdown_grace_secs),
            state,
            runtime,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves until `shutdown` resolves, then stops accepting and gives in-flight requests the
    /// configured grace period.
    pub async fn run_until_stopped<F>(self, shutdown: F) -> std::io::Result<()>
    where
        F: Future<Output = ()> + Send + 'static,
    {
        tracing::info!(addr = %self.addr, profile = %self.state.profile, "nve listening");
        let served = Server::new_with_acceptor(self.acceptor)
            .run_with_graceful_shutdown(self.app, shutdown, Some(self.grace))
            .await;
        if let Some(runtime) = self.runtime {
            tracing::info!("draining embedded workers");
            runtime.shutdown().await;
        }
        served
    }
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %e, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutdown requested; draining in-flight requests");
}

/// Disables Nagle's algorithm on every connection. A WebSocket session writes an `op` and then
/// an `ack` as two small frames; with Nagle on, the second waits for the peer's delayed ACK
/// (40 ms on Linux), which showed up as a 40 ms edit round trip.
struct NoDelay<A>(A);

impl<A: Acceptor<Io = tokio::net::TcpStream>> Acceptor for NoDelay<A> {
    type Io = tokio::net::TcpStream;

    fn local_addr(&self) -> Vec<poem::web::LocalAddr> {
        self.0.local_addr()
    }

    async fn accept(
        &mut self,
    ) -> std::io::Result<(
        Self::Io,
        poem::web::LocalAddr,
        poem::web::RemoteAddr,
        poem::http::uri::Scheme,
    )> {
        let (io, local, remote, scheme) = self.0.accept().await?;
        if let Err(e) = io.set_nodelay(true) {
            tracing::debug!(error = %e, "cannot set TCP_NODELAY");
        }
        Ok((io, local, remote, scheme))
    }
}
