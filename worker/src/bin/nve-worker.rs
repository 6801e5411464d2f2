//! `nve-worker`: the distributed mode's job consumer.
//!
//! * `nve-worker run --queues edit,render --concurrency N`: consume the queues until SIGTERM or
//!   SIGINT, then drain (finish running jobs within `jobs.shutdown_grace_secs`, hand back the
//!   rest). Serves `/metrics` and `/healthz` on `jobs.worker_bind` (`--listen` overrides).
//! * `nve-worker check`: verify configuration and every dependency a worker needs.
//! * `nve-worker exec …`: one piece of isolated work (started by the worker itself).
//! * `nve-worker selftest`: encode a second of test pattern with every available encoder and
//!   print a table; the runbook's canary (exit 0 when the default profile can be rendered).

use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};

use nve_worker::dispatch::Dispatcher;
use nve_worker::events::{EventSink, NoEvents, RedisEvents};
use nve_worker::jobs::Queue;
use nve_worker::runtime::{Runtime, Settings, webhook_settings};
use nve_worker::webhooks::Webhooks;

#[derive(Parser)]
#[command(name = "nve-worker", version, about = "nve job worker")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Consume jobs until SIGTERM/SIGINT, then drain.
    Run {
        /// Queues to serve, comma-separated: edit, render.
        #[arg(long, default_value = "edit,render", value_delimiter = ',')]
        queues: Vec<String>,
        /// Concurrent jobs per queue (overrides jobs.edit_concurrency and
        /// jobs.render_concurrency).
        #[arg(long)]
        concurrency: Option<usize>,
        /// Address for /metrics and /healthz (overrides jobs.worker_bind).
        #[arg(long)]
        listen: Option<String>,
    },
    /// Load the configuration, connect to the database, queue backend and storage, check
    /// GStreamer's elements, and print the report as JSON. Exit 0 when everything is ready.
    Check,
    /// Discover the encoders, encode one second of test pattern with each available one,
    /// probe the results and print a table. Exit 0 when every software encoder the default
    /// output profile needs works.
    Selftest,
    /// Run one piece of isolated work, reporting JSON lines on stdout.
    #[command(hide = true)]
    Exec {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Command::Exec { args } = &cli.command {
        return nve_worker::child::main(args);
    }
    if let Command::Selftest = &cli.command {
        return selftest();
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("nve-worker: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async move {
        match cli.command {
            Command::Check => check().await,
            Command::Run {
                queues,
                concurrency,
                listen,
            } => run(queues, concurrency, listen).await,
            Command::Exec { .. } | Command::Selftest => ExitCode::SUCCESS,
        }
    })
}

fn load() -> Result<nve_config::Config, ExitCode> {
    match nve_config::load(&nve_config::LoadOptions::default()) {
        Ok(l) => {
            let mut config = l.config;
            if l.profile == nve_config::Profile::Dev
                && let Err(e) = nve_config::ensure_dev_jwt_secret(&mut config)
            {
                eprintln!("nve-worker: {e}");
                return Err(ExitCode::FAILURE);
            }
            Ok(config)
        }
        Err(e) => {
            eprintln!("{e}");
            Err(ExitCode::from(2))
        }
    }
}

fn init_logging(config: &nve_config::Config) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .or_else(|_| tracing_subscriber::EnvFilter::try_new(&config.log.level))
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match config.log.format {
        nve_config::LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .try_init(),
        nve_config::LogFormat::Pretty => builder.try_init(),
    };
}

async fn run(
    queue_names: Vec<String>,
    concurrency: Option<usize>,
    listen: Option<String>,
) -> ExitCode {
    let config = match load() {
        Ok(c) => c,
        Err(code) => return code,
    };
    init_logging(&config);
    nve_worker::install_tls_provider();
    let mut queues = Vec::new();
    for name in &queue_names {
        match Queue::parse(name.trim()) {
            Some(q) => {
                let slots = concurrency.unwrap_or(match q {
                    Queue::Edit => config.jobs.edit_concurrency,
                    Queue::Render => config.jobs.render_concurrency,
                });
                queues.push((q, slots));
            }
            None => {
                eprintln!("nve-worker: unknown queue {name:?} (edit, render)");
                return ExitCode::from(2);
            }
        }
    }
    let db = match nve_worker::db::connect_worker(&config).await {
        Ok(db) => db,
        Err(e) => {
            eprintln!("nve-worker: database: {e}");
            return ExitCode::FAILURE;
        }
    };
    let (dispatcher, events): (Dispatcher, Arc<dyn EventSink>) =
        match (&config.queue.backend, &config.queue.redis_url) {
            (nve_config::QueueBackend::Redis, Some(url)) => {
                let d = Dispatcher::redis(
                    url.expose(),
                    &config.queue.redis_prefix,
                    config.jobs.redis_backlog,
                )
                .await;
                let e = RedisEvents::connect(url.expose(), &config.queue.redis_prefix).await;
                match (d, e) {
                    (Ok(d), Ok(e)) => (d, Arc::new(e)),
                    (Err(err), _) => {
                        eprintln!("nve-worker: redis: {err}");
                        return ExitCode::FAILURE;
                    }
                    (_, Err(err)) => {
                        eprintln!("nve-worker: redis: {err}");
                        return ExitCode::FAILURE;
                    }
                }
            }
            _ => {
                // Embedded deployments run their workers inside `nve serve`; a separate
                // process on SQLite still works (it polls the database) but sends no events.
                tracing::warn!("queue.backend is not redis: polling the database, no live events");
                (Dispatcher::local(), Arc::new(NoEvents))
            }
        };
    let child = match config
        .jobs
        .child_program
        .clone()
        .map_or_else(std::env::current_exe, Ok)
    {
        Ok(p) => p,
        Err(e) => {
            eprintln!("nve-worker: cannot locate this program: {e}");
            return ExitCode::FAILURE;
        }
    };
    let storage = match nve_worker::storage::Storage::open(&config) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("nve-worker: {e}");
            return ExitCode::FAILURE;
        }
    };
    let settings = Settings::from_config(&config, queues, child, storage);
    let key = config
        .auth
        .jwt_secret
        .as_ref()
        .map(|s| s.expose().as_bytes().to_vec())
        .unwrap_or_default();
    let webhooks = if key.is_empty() {
        tracing::warn!("auth.jwt_secret is not set: this worker sends no webhooks");
        None
    } else {
        Some(Webhooks::new(db.clone(), webhook_settings(&config, &key)))
    };
    let bind = listen.unwrap_or_else(|| config.jobs.worker_bind.clone());
    let listener = match tokio::net::TcpListener::bind(&bind).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("nve-worker: cannot listen on {bind}: {e}");
            return ExitCode::FAILURE;
        }
    };
    let addr = listener.local_addr().map(|a| a.to_string()).unwrap_or(bind);
    drop(listener);
    let recorder = metrics_handle();
    let ops = ops_server(addr.clone(), recorder, db.clone(), dispatcher.clone());
    let ops_task = tokio::spawn(ops);
    tracing::info!(owner = %settings.owner, queues = ?settings.queues, metrics = %addr, "nve-worker running");
    let handle = Runtime::new(db, dispatcher, events, settings, webhooks).start();
    shutdown_signal().await;
    tracing::info!("shutdown requested; draining");
    handle.shutdown().await;
    ops_task.abort();
    tracing::info!("drained; bye");
    ExitCode::SUCCESS
}

fn metrics_handle() -> metrics_exporter_prometheus::PrometheusHandle {
    let builder = nve_worker::metrics::with_job_buckets(
        metrics_exporter_prometheus::PrometheusBuilder::new(),
    );
    match builder.install_recorder() {
        Ok(h) => {
            nve_worker::metrics::describe();
            h
        }
        Err(_) => metrics_exporter_prometheus::PrometheusBuilder::new()
            .build_recorder()
            .handle(),
    }
}

async fn ops_server(
    addr: String,
    recorder: metrics_exporter_prometheus::PrometheusHandle,
    db: sea_orm::DatabaseConnection,
    dispatcher: Dispatcher,
) {
    use poem::{EndpointExt, Route, get, handler, web::Data};

    #[handler]
    fn metrics(recorder: Data<&metrics_exporter_prometheus::PrometheusHandle>) -> String {
        recorder.render()
    }

    #[handler]
    async fn healthz(
        db: Data<&sea_orm::DatabaseConnection>,
        dispatcher: Data<&Dispatcher>,
    ) -> poem::Response {
        let db_ok = db.ping().await.is_ok();
        let queue_ok = dispatcher.ping().await.is_ok();
        let body = serde_json::json!({
            "status": if db_ok && queue_ok { "ok" } else { "unavailable" },
            "database": db_ok,
            "queue": queue_ok,
        });
        poem::Response::builder()
            .status(if db_ok && queue_ok {
                poem::http::StatusCode::OK
            } else {
                poem::http::StatusCode::SERVICE_UNAVAILABLE
            })
            .content_type("application/json")
            .body(body.to_string())
    }

    let app = Route::new()
        .at("/metrics", get(metrics))
        .at("/healthz", get(healthz))
        .data(recorder)
        .data(db)
        .data(dispatcher);
    if let Err(e) = poem::Server::new(poem::listener::TcpListener::bind(addr))
        .run(app)
        .await
    {
        tracing::error!(error = %e, "metrics server stopped");
    }
}

async fn shutdown_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = term => {}
    }
}

async fn check() -> ExitCode {
    let config = match load() {
        Ok(c) => c,
        Err(code) => return code,
    };
    let db = match nve_worker::db::connect(&config).await {
        Ok(db) => db,
        Err(e) => {
            eprintln!("database: {e}");
            return ExitCode::FAILURE;
        }
    };
    let storage = match nve_worker::storage::Storage::open(&config) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    let report = nve_worker::readiness::check(&config, &db, &storage).await;
    match serde_json::to_string_pretty(&report) {
        Ok(text) => eprintln!("{text}"),
        Err(e) => eprintln!("report: {e}"),
    }
    if report.ready {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// One line of the selftest table.
struct SelftestRow {
    codec: &'static str,
    element: String,
    kind: &'static str,
    result: Result<String, String>,
}

/// `nve-worker selftest`: the canary. Loads the configuration like the other subcommands (for
/// logging and the hardware policy), then puts every encoder discovery offers through a real
/// one-second encode and probe.
// The table on stdout is this command's output, not logging.
#[allow(clippy::print_stdout)]
fn selftest() -> ExitCode {
    use nve_pipelines::render::encoders::{self, Availability, Codec, EncoderPolicy};
    use nve_pipelines::render::output;
    use nve_pipelines::render::profiles::{BaseFormat, DEFAULT_PRESET, OutputProfile};

    let config = match load() {
        Ok(c) => c,
        Err(code) => return code,
    };
    init_logging(&config);
    let policy = nve_worker::runtime::encoder_policy(&config.media);
    if let Err(e) = nve_pipelines::elements::inventory() {
        eprintln!("selftest: {e}");
        return ExitCode::FAILURE;
    }
    let dir = std::env::temp_dir().join(format!("nve-selftest-{}", std::process::id()));
    if let Err(e) = std::fs::create_dir_all(&dir) {
        eprintln!("selftest: cannot create {}: {e}", dir.display());
        return ExitCode::FAILURE;
    }
    let base = BaseFormat {
        width: 640,
        height: 360,
        fps_num: 30,
        fps_den: 1,
        sample_rate: 48_000,
        channels: 2,
        source_colorimetry: None,
    };
    let mut rows = Vec::new();
    let mut not_installed = Vec::new();
    for status in encoders::discover_all() {
        let c = &status.candidate;
        let kind = c.kind.label();
        let result = match &status.availability {
            Availability::NotInstalled => {
                not_installed.push(c.element.clone());
                continue;
            }
            Availability::Failed { reason } => Err(format!("test encode failed: {reason}")),
            Availability::Available { .. } => {
                let profile = output::test_profile(c.codec);
                let path = dir.join(format!("{}.{}", c.element, profile.extension()));
                let outcome = output::test_encode(
                    &profile,
                    c,
                    &base,
                    1.0,
                    &path,
                    std::time::Duration::from_secs(120),
                )
                .map_err(|e| format!("{}: {e}", e.code()))
                .and_then(|(report, took)| {
                    let what = output::verify_file(&profile, &report.path)
                        .map_err(|e| format!("{}: {e}", e.code()))?;
                    Ok(format!("ok {} ms ({what})", took.as_millis()))
                });
                let _ = std::fs::remove_file(&path);
                outcome
            }
        };
        rows.push(SelftestRow {
            codec: c.codec.name(),
            element: output::describe_element(&c.element).to_owned(),
            kind,
            result,
        });
    }
    let _ = std::fs::remove_dir_all(&dir);

    let widths = rows.iter().fold((5, 7, 4), |(a, b, c), r| {
        (
            a.max(r.codec.len()),
            b.max(r.element.len()),
            c.max(r.kind.len()),
        )
    });
    println!(
        "{:<a$}  {:<b$}  {:<c$}  result",
        "codec",
        "element",
        "kind",
        a = widths.0,
        b = widths.1,
        c = widths.2
    );
    for r in &rows {
        let result = match &r.result {
            Ok(text) => text.clone(),
            Err(e) => format!("FAILED {e}"),
        };
        println!(
            "{:<a$}  {:<b$}  {:<c$}  {result}",
            r.codec,
            r.element,
            r.kind,
            a = widths.0,
            b = widths.1,
            c = widths.2
        );
    }
    println!();
    println!("hardware: {}", encoders::hardware_summary());
    println!(
        "policy: media.hardware_acceleration = {policy:?}{}",
        match policy {
            EncoderPolicy::Vaapi | EncoderPolicy::Nvcodec
                if !encoders::working_hardware()
                    .iter()
                    .any(|s| policy_family(policy) == Some(s.candidate.kind)) =>
                " (asked for, but none works here: renders use software)",
            _ => "",
        }
    );
    if !not_installed.is_empty() {
        println!("not installed: {}", not_installed.join(", "));
    }

    // The default profile needs its software video encoder and its audio encoder.
    let needed: Vec<(Codec, String)> = match OutputProfile::preset(DEFAULT_PRESET) {
        Ok(p) => {
            let mut list = Vec::new();
            match encoders::best(&p, EncoderPolicy::Off) {
                Ok(c) => list.push((c.codec, c.element)),
                Err(e) => {
                    println!(
                        "selftest FAILED: the default profile {DEFAULT_PRESET:?} has no software video encoder: {e}"
                    );
                    return ExitCode::FAILURE;
                }
            }
            if let Some(a) = &p.audio {
                match encoders::audio_encoder_for(a, 2) {
                    Ok(c) => list.push((c.codec, c.element)),
                    Err(e) => {
                        println!(
                            "selftest FAILED: the default profile {DEFAULT_PRESET:?} has no audio encoder: {e}"
                        );
                        return ExitCode::FAILURE;
                    }
                }
            }
            list
        }
        Err(e) => {
            println!("selftest FAILED: {e}");
            return ExitCode::FAILURE;
        }
    };
    let broken: Vec<String> = needed
        .iter()
        .filter(|(codec, element)| {
            !rows.iter().any(|r| {
                r.codec == codec.name()
                    && r.element == output::describe_element(element)
                    && r.result.is_ok()
            })
        })
        .map(|(codec, element)| format!("{element} ({})", codec.name()))
        .collect();
    if broken.is_empty() {
        println!("selftest ok: the default profile {DEFAULT_PRESET:?} renders here");
        ExitCode::SUCCESS
    } else {
        println!(
            "selftest FAILED: the default profile {DEFAULT_PRESET:?} cannot be rendered: {} not working",
            broken.join(", ")
        );
        ExitCode::FAILURE
    }
}

fn policy_family(
    policy: nve_pipelines::render::encoders::EncoderPolicy,
) -> Option<nve_pipelines::render::encoders::EncoderKind> {
    use nve_pipelines::render::encoders::{EncoderKind, EncoderPolicy};
    match policy {
        EncoderPolicy::Vaapi => Some(EncoderKind::Vaapi),
        EncoderPolicy::Nvcodec => Some(EncoderKind::Nvcodec),
        EncoderPolicy::Auto | EncoderPolicy::Off => None,
    }
}
