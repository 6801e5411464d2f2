//! Configuration of nve: one typed tree built by figment from
//! built-in defaults < `nve.toml` (profile tables `default`, `dev`, `staging`, `prod`)
//! < `NVE_*` environment variables (`__` separates nesting levels).
//!
//! Validation collects every problem at once so an operator fixes a broken
//! deployment in one round instead of one restart per mistake.

mod secret;
mod validate;

use std::fmt;
use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Format, Serialized, Toml};
use serde::{Deserialize, Serialize};

pub use secret::{DatabaseUrl, Secret};

/// Environment variables under the `NVE_` prefix that are not configuration keys.
const NON_CONFIG_ENV: &[&str] = &["profile", "config"];

/// Deployment profile, chosen by `NVE_PROFILE` (default `dev`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Profile {
    Dev,
    Staging,
    Prod,
}

impl Profile {
    pub fn parse(s: &str) -> Option<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "dev" | "development" => Some(Self::Dev),
            "staging" => Some(Self::Staging),
            "prod" | "production" => Some(Self::Prod),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Dev => "dev",
            Self::Staging => "staging",
            Self::Prod => "prod",
        }
    }

    /// Staging and production are where weak defaults become incidents.
    pub fn is_strict(self) -> bool {
        !matches!(self, Self::Dev)
    }
}

impl fmt::Display for Profile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Where the embedded mode keeps its SQLite database, media and generated secrets.
    pub data_dir: PathBuf,
    pub server: ServerConfig,
    pub database: DatabaseConfig,
    pub auth: AuthConfig,
    pub queue: QueueConfig,
    pub jobs: JobsConfig,
    pub webhooks: WebhooksConfig,
    pub storage: StorageConfig,
    pub media: MediaConfig,
    pub timeline: TimelineConfig,
    pub log: LogConfig,
    pub ui: UiConfig,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// Address the HTTP server listens on.
    pub bind: String,
    /// Externally visible base URL (used in links and webhooks); optional.
    pub public_url: Option<String>,
    /// Largest JSON request body accepted, in bytes.
    pub max_json_body_bytes: u64,
    /// Seconds in-flight requests get to finish after SIGTERM/SIGINT.
    pub shutdown_grace_secs: u64,
    /// Serve interactive API docs at `/docs`.
    pub docs: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseConfig {
    /// `sqlite://PATH?mode=rwc` or `postgres://user:pass@host/db`. Unset: a SQLite file in `data_dir`.
    pub url: Option<DatabaseUrl>,
    pub max_connections: u32,
    /// Apply pending migrations at start-up. Defaults to true in `dev`, false elsewhere.
    pub auto_migrate: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    /// HS256 key for access tokens, at least 32 bytes. Unset in `dev`: generated once into `data_dir`.
    pub jwt_secret: Option<Secret>,
    pub jwt_issuer: String,
    pub jwt_audience: String,
    pub access_token_ttl_secs: u64,
    pub refresh_token_ttl_secs: u64,
    /// Whether anyone may create an account through the API (operators can always use `nve admin create-user`).
    pub allow_registration: bool,
    /// Login attempts allowed per client address and per e-mail address per minute.
    pub login_attempts_per_minute: u32,
    /// API keys a user may create per minute.
    pub api_key_creations_per_minute: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum QueueBackend {
    /// Durable queue in the embedded SQLite database; workers run inside `nve serve`.
    Sqlite,
    /// Redis; `nve-worker` replicas consume the queues.
    Redis,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueueConfig {
    pub backend: QueueBackend,
    /// `redis://host:port/db`; required when `backend = "redis"`.
    pub redis_url: Option<DatabaseUrl>,
    /// Prefix of every Redis key nve writes, so several deployments or test runs can share one server.
    pub redis_prefix: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobsConfig {
    /// Run workers inside `nve serve` (always wanted embedded; optional next to `nve-worker`s).
    pub embedded_workers: bool,
    /// Concurrent `edit` jobs per worker process.
    pub edit_concurrency: usize,
    /// Concurrent `render` jobs per worker process.
    pub render_concurrency: usize,
    /// Starts allowed per job, crashes included, before it is failed.
    pub max_attempts: i32,
    /// A running job's lease; a dead worker's job is taken over within about this long.
    pub lease_secs: u64,
    /// How often each worker's reconciler runs.
    pub reconcile_interval_ms: u64,
    /// A dispatched job not started after this long, and gone from the queue, is sent again.
    pub redispatch_after_secs: u64,
    /// Job ids held in Redis per queue; the rest of a backlog waits in the database.
    pub redis_backlog: usize,
    /// On SIGTERM, how long running jobs may finish before they are handed back.
    pub shutdown_grace_secs: u64,
    /// Wall-clock limit of an isolated child.
    pub child_timeout_secs: u64,
    /// Address-space limit of an isolated child, MiB.
    pub child_memory_mb: u64,
    /// CPU-time limit of an isolated child, seconds.
    pub child_cpu_secs: u64,
    /// Accept `chaos` jobs (game days: children that crash, hang or fail on purpose).
    pub chaos: bool,
    /// `nve-worker` on PostgreSQL commits without waiting for the WAL flush; its writes are
    /// all redone if a database crash loses them (see docs/jobs.md).
    pub async_commit: bool,
    /// Where `nve-worker run` serves /metrics and /healthz.
    pub worker_bind: String,
    /// The program isolated children run as (`<program> exec …`). Unset: the running binary.
    pub child_program: Option<PathBuf>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhooksConfig {
    /// Deliver to private, loopback and link-local addresses (internal receivers, tests).
    pub allow_private: bool,
    /// Per delivery attempt.
    pub timeout_secs: u64,
    /// Attempts per event before it is marked failed.
    pub max_attempts: i32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StorageBackend {
    /// A directory (the embedded mode; or a volume every replica mounts).
    Local,
    /// S3-compatible object storage (the distributed mode).
    S3,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StorageConfig {
    pub backend: StorageBackend,
    /// Directory for media blobs with the `local` backend. Unset: `data_dir/media`.
    pub path: Option<PathBuf>,
    /// Local directory for uploads in progress and the workers' read-through cache of
    /// inputs. Unset: `data_dir/work`.
    pub work_path: Option<PathBuf>,
    /// Size bound of the read-through cache of object-storage inputs, in MiB.
    pub cache_mb: u64,
    /// Bucket name (`s3` backend).
    pub s3_bucket: Option<String>,
    /// Endpoint URL of an S3-compatible service (MinIO, Ceph, R2, moto). Unset: AWS.
    pub s3_endpoint: Option<String>,
    pub s3_region: String,
    pub s3_access_key_id: Option<String>,
    pub s3_secret_access_key: Option<Secret>,
    /// Key prefix inside the bucket, so several deployments can share one.
    pub s3_prefix: String,
    /// Allow a plain-HTTP endpoint (a service on a private network, tests).
    pub s3_allow_http: bool,
    /// `https://bucket.endpoint/key` instead of `https://endpoint/bucket/key`.
    pub s3_virtual_hosted: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HardwareAcceleration {
    /// Use a hardware encoder/decoder when one is present and passes a test encode.
    Auto,
    /// Software only.
    Off,
    /// VA-API encoders first; software when VA-API does not work here or fails mid-render
    /// (a render never fails for want of hardware; `nve-worker selftest` shows what is used).
    Vaapi,
    /// NVIDIA (NVENC/NVDEC) first, with the same software fallback.
    Nvcodec,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MediaConfig {
    pub hardware_acceleration: HardwareAcceleration,
    /// Generate posters, thumbnail strips, proxies and waveforms after ingest.
    pub thumbnails: bool,
    /// Offer output codecs whose encoders are slow or immature here (e.g. AV1).
    pub experimental_codecs: bool,
    /// Largest upload, MiB; a larger body is refused (413) as soon as it crosses this.
    pub max_upload_mb: u64,
    /// An upload that sends nothing for this long is cut.
    pub upload_idle_timeout_secs: u64,
    /// Imports by URL: the whole download must finish within this (its size limit is
    /// `max_upload_mb`).
    pub import_timeout_secs: u64,
    /// Imports by URL may fetch from private, loopback and link-local addresses (a media
    /// server on the internal network; tests). Off: only public addresses.
    pub import_allow_private: bool,
    /// Ingest limits, checked by the probe before any other work.
    pub max_duration_secs: u64,
    pub max_width: u32,
    pub max_height: u32,
    pub max_pixels: u64,
    pub max_fps: f64,
    pub max_audio_channels: u32,
    pub max_audio_rate: u32,
    /// Accepted codecs by short name (`h264`, `aac` …); empty accepts every decodable one.
    pub codecs: Vec<String>,
    /// Accepted containers by caps name (`video/quicktime` …); empty accepts every one.
    pub containers: Vec<String>,
}

/// Size limits of one timeline document, checked on every edit.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TimelineConfig {
    pub max_tracks: usize,
    /// Clips over all tracks.
    pub max_clips: usize,
    pub max_keyframes_per_clip: usize,
    pub max_effects_per_clip: usize,
    pub max_title_chars: usize,
    /// No clip may end later than this many seconds.
    pub max_duration_secs: u64,
    /// Refuse times that are not on the frame grid instead of snapping them.
    pub strict_grid: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Json,
    Pretty,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    pub format: LogFormat,
    /// A `tracing` filter: `info`, or `warn,nve_api=debug`.
    pub level: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UiConfig {
    /// Directory of the built single-page app; served at `/` when it exists.
    pub dist_dir: PathBuf,
}

impl Config {
    /// Built-in defaults for a profile: what a laptop needs with nothing configured.
    pub fn defaults(profile: Profile) -> Self {
        Config {
            data_dir: PathBuf::from("nve-data"),
            server: ServerConfig {
                bind: "127.0.0.1:8080".into(),
                public_url: None,
                max_json_body_bytes: 1024 * 1024,
                shutdown_grace_secs: 30,
                docs: true,
            },
            database: DatabaseConfig {
                url: None,
                max_connections: 10,
                auto_migrate: profile == Profile::Dev,
            },
            auth: AuthConfig {
                jwt_secret: None,
                jwt_issuer: "nve".into(),
                jwt_audience: "nve-api".into(),
                access_token_ttl_secs: 15 * 60,
                refresh_token_ttl_secs: 30 * 24 * 3600,
                allow_registration: true,
                login_attempts_per_minute: 10,
                api_key_creations_per_minute: 10,
            },
            queue: QueueConfig {
                backend: QueueBackend::Sqlite,
                redis_url: None,
                redis_prefix: "nve".into(),
            },
            jobs: JobsConfig {
                embedded_workers: true,
                edit_concurrency: 4,
                render_concurrency: 1,
                max_attempts: 3,
                lease_secs: 30,
                reconcile_interval_ms: 1000,
                redispatch_after_secs: 30,
                redis_backlog: 10_000,
                shutdown_grace_secs: 30,
                child_timeout_secs: 3600,
                child_memory_mb: 4096,
                child_cpu_secs: 4 * 3600,
                chaos: false,
                async_commit: true,
                worker_bind: "127.0.0.1:9091".into(),
                child_program: None,
            },
            webhooks: WebhooksConfig {
                allow_private: false,
                timeout_secs: 10,
                max_attempts: 8,
            },
            storage: StorageConfig {
                backend: StorageBackend::Local,
                path: None,
                work_path: None,
                cache_mb: 10_240,
                s3_bucket: None,
                s3_endpoint: None,
                s3_region: "us-east-1".into(),
                s3_access_key_id: None,
                s3_secret_access_key: None,
                s3_prefix: String::new(),
                s3_allow_http: false,
                s3_virtual_hosted: false,
            },
            media: MediaConfig {
                hardware_acceleration: HardwareAcceleration::Auto,
                thumbnails: true,
                experimental_codecs: false,
                max_upload_mb: 4096,
                upload_idle_timeout_secs: 30,
                import_timeout_secs: 1800,
                import_allow_private: false,
                max_duration_secs: 6 * 3600,
                max_width: 8192,
                max_height: 8192,
                max_pixels: 8192 * 4320,
                max_fps: 240.0,
                max_audio_channels: 16,
                max_audio_rate: 192_000,
                codecs: Vec::new(),
                containers: Vec::new(),
            },
            timeline: TimelineConfig {
                max_tracks: 32,
                max_clips: 2_000,
                max_keyframes_per_clip: 256,
                max_effects_per_clip: 8,
                max_title_chars: 2_000,
                max_duration_secs: 6 * 3600,
                strict_grid: false,
            },
            log: LogConfig {
                format: LogFormat::Json,
                level: "info".into(),
            },
            ui: UiConfig {
                dist_dir: PathBuf::from("ui/dist"),
            },
        }
    }

    /// The database URL in effect: the configured one, or the embedded SQLite file.
    pub fn database_url(&self) -> String {
        match &self.database.url {
            Some(url) => url.expose().to_owned(),
            None => format!(
                "sqlite://{}?mode=rwc",
                self.data_dir.join("nve.db").to_string_lossy()
            ),
        }
    }

    pub fn storage_path(&self) -> PathBuf {
        self.storage
            .path
            .clone()
            .unwrap_or_else(|| self.data_dir.join("media"))
    }

    pub fn work_path(&self) -> PathBuf {
        self.storage
            .work_path
            .clone()
            .unwrap_or_else(|| self.data_dir.join("work"))
    }

    /// The effective configuration as JSON, secrets replaced by `[redacted]`.
    pub fn redacted_json(&self) -> serde_json::Value {
        // Secret and DatabaseUrl redact themselves when serialized, so the whole tree is safe to print.
        serde_json::to_value(self).unwrap_or(serde_json::Value::Null)
    }
}

/// Where to read configuration from, and overrides given on the command line.
#[derive(Debug, Default, Clone)]
pub struct LoadOptions {
    /// Profile name; `None` reads `NVE_PROFILE` (default `dev`).
    pub profile: Option<String>,
    /// Config file; `None` reads `NVE_CONFIG` or falls back to `./nve.toml` when it exists.
    pub file: Option<PathBuf>,
    /// Command-line overrides, applied above everything else.
    pub overrides: Vec<(String, String)>,
}

/// A configuration that could not be loaded or failed validation: every problem, one per line.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration:\n{}", .problems.iter().map(|p| format!("  - {p}")).collect::<Vec<_>>().join("\n"))]
pub struct ConfigError {
    pub problems: Vec<String>,
}

/// A loaded and validated configuration.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub profile: Profile,
    pub config: Config,
    /// The config file that was read, if any.
    pub file: Option<PathBuf>,
}

/// Loads from the process environment.
pub fn load(opts: &LoadOptions) -> Result<Loaded, ConfigError> {
    let env: Vec<(String, String)> = std::env::vars().collect();
    load_from(opts, &env)
}

/// Loads with an explicit environment (tests pass their own instead of mutating the process's).
pub fn load_from(opts: &LoadOptions, env: &[(String, String)]) -> Result<Loaded, ConfigError> {
    let lookup = |name: &str| env.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
    let mut problems = Vec::new();

    let profile_name = opts
        .profile
        .clone()
        .or_else(|| lookup("NVE_PROFILE"))
        .unwrap_or_else(|| "dev".into());
    let profile = match Profile::parse(&profile_name) {
        Some(p) => p,
        None => {
            problems.push(format!(
                "profile: unknown profile `{profile_name}` (NVE_PROFILE); expected one of dev, staging, prod"
            ));
            // Validate the rest against the strictest rules so nothing else is hidden.
            Profile::Prod
        }
    };

    let explicit_file = opts
        .file
        .clone()
        .or_else(|| lookup("NVE_CONFIG").map(PathBuf::from));
    let file = match explicit_file {
        Some(path) => {
            if !path.is_file() {
                problems.push(format!("config file `{}` does not exist", path.display()));
            }
            Some(path)
        }
        None => Some(PathBuf::from("nve.toml")).filter(|p| p.is_file()),
    };

    let mut figment = Figment::new().merge(Serialized::defaults(Config::defaults(profile)));
    if let Some(path) = file.as_deref().filter(|p| p.is_file()) {
        figment = figment.merge(Toml::file_exact(path).nested());
    }
    figment = figment
        .merge(env_provider(env))
        .merge(overrides_provider(&opts.overrides));
    let figment = figment.select(profile.as_str());

    // Unknown keys are reported, then pruned so the rest is still type-checked and validated.
    let (unknown, pruned) = unknown_keys(&figment);
    problems.extend(unknown);
    let config = extract_sections(&Figment::from(Serialized::defaults(pruned)), &mut problems);

    match config {
        Some(config) => {
            problems.extend(validate::validate(&config, profile));
            if problems.is_empty() {
                Ok(Loaded {
                    profile,
                    config,
                    file,
                })
            } else {
                Err(ConfigError { problems })
            }
        }
        None => Err(ConfigError { problems }),
    }
}

/// serde stops at the first error of a struct, so each section is extracted on its own
/// to report one problem per broken section instead of one for the whole file.
fn extract_sections(figment: &Figment, problems: &mut Vec<String>) -> Option<Config> {
    fn section<T: serde::de::DeserializeOwned>(
        figment: &Figment,
        key: &str,
        problems: &mut Vec<String>,
    ) -> Option<T> {
        match figment.extract_inner::<T>(key) {
            Ok(v) => Some(v),
            Err(err) => {
                for e in err {
                    // Unknown keys are reported by `unknown_keys`, all of them.
                    if !matches!(e.kind, figment::error::Kind::UnknownField(..)) {
                        // extract_inner reports the section key in varying positions; rebuild it.
                        let mut path = vec![key.to_owned()];
                        path.extend(e.path.iter().filter(|p| p.as_str() != key).cloned());
                        problems.push(describe_figment_error(&path, &e.kind));
                    }
                }
                None
            }
        }
    }
    let data_dir = section::<PathBuf>(figment, "data_dir", problems);
    let server = section(figment, "server", problems);
    let database = section(figment, "database", problems);
    let auth = section(figment, "auth", problems);
    let queue = section(figment, "queue", problems);
    let jobs = section(figment, "jobs", problems);
    let webhooks = section(figment, "webhooks", problems);
    let storage = section(figment, "storage", problems);
    let media = section(figment, "media", problems);
    let timeline = section(figment, "timeline", problems);
    let log = section(figment, "log", problems);
    let ui = section(figment, "ui", problems);
    Some(Config {
        data_dir: data_dir?,
        server: server?,
        database: database?,
        auth: auth?,
        queue: queue?,
        jobs: jobs?,
        webhooks: webhooks?,
        storage: storage?,
        media: media?,
        timeline: timeline?,
        log: log?,
        ui: ui?,
    })
}

/// Every key that is not part of the configuration tree, wherever it came from, and the tree
/// without them.
fn unknown_keys(figment: &Figment) -> (Vec<String>, serde_json::Value) {
    fn walk(
        known: &serde_json::Value,
        actual: &mut serde_json::Value,
        path: &str,
        out: &mut Vec<String>,
    ) {
        let (Some(known), Some(actual)) = (known.as_object(), actual.as_object_mut()) else {
            return;
        };
        let mut remove = Vec::new();
        for (key, value) in actual.iter_mut() {
            let full = if path.is_empty() {
                key.clone()
            } else {
                format!("{path}.{key}")
            };
            match known.get(key) {
                Some(k) => walk(k, value, &full, out),
                None => {
                    out.push(format!(
                        "{full} (NVE_{}): unknown configuration key",
                        full.replace('.', "__").to_ascii_uppercase()
                    ));
                    remove.push(key.clone());
                }
            }
        }
        for key in remove {
            actual.remove(&key);
        }
    }
    let known = serde_json::to_value(Config::defaults(Profile::Dev)).unwrap_or_default();
    let mut actual = figment.extract::<serde_json::Value>().unwrap_or_default();
    let mut out = Vec::new();
    walk(&known, &mut actual, "", &mut out);
    (out, actual)
}

fn env_provider(env: &[(String, String)]) -> Serialized<serde_json::Value> {
    // figment's Env provider reads the process environment; we want an explicit one
    // (tests), so build the same nested dictionary it would: NVE_A__B=v -> {a: {b: v}}.
    let mut root = serde_json::Map::new();
    for (key, value) in env {
        let Some(rest) = key.strip_prefix("NVE_") else {
            continue;
        };
        let path: Vec<String> = rest.split("__").map(|s| s.to_ascii_lowercase()).collect();
        let first = path.first().map(String::as_str).unwrap_or_default();
        // NVE_TEST_* belongs to the test harness, NVE_PROFILE/NVE_CONFIG choose what is loaded.
        if NON_CONFIG_ENV.contains(&first) || first.starts_with("test_") || first.is_empty() {
            continue;
        }
        insert_path(&mut root, &path, parse_env_value(value));
    }
    Serialized::globals(serde_json::Value::Object(root))
}

fn overrides_provider(overrides: &[(String, String)]) -> Serialized<serde_json::Value> {
    let mut root = serde_json::Map::new();
    for (key, value) in overrides {
        let path: Vec<String> = key.split('.').map(str::to_owned).collect();
        insert_path(&mut root, &path, serde_json::Value::String(value.clone()));
    }
    Serialized::globals(serde_json::Value::Object(root))
}

fn insert_path(
    root: &mut serde_json::Map<String, serde_json::Value>,
    path: &[String],
    value: serde_json::Value,
) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    let mut node = root;
    for part in parents {
        let entry = node
            .entry(part.clone())
            .or_insert_with(|| serde_json::Value::Object(Default::default()));
        if !entry.is_object() {
            *entry = serde_json::Value::Object(Default::default());
        }
        match entry {
            serde_json::Value::Object(map) => node = map,
            _ => return,
        }
    }
    node.insert(last.clone(), value);
}

/// Environment values are strings; like figment's Env provider, read booleans and numbers as such
/// so `NVE_SERVER__DOCS=false` works. Strings that merely look numeric stay usable because
/// figment converts numbers back to strings where a string is expected.
fn parse_env_value(value: &str) -> serde_json::Value {
    let v = value.trim();
    if v.eq_ignore_ascii_case("true") {
        return serde_json::Value::Bool(true);
    }
    if v.eq_ignore_ascii_case("false") {
        return serde_json::Value::Bool(false);
    }
    if let Ok(n) = v.parse::<i64>() {
        return serde_json::Value::from(n);
    }
    if let Ok(n) = v.parse::<f64>()
        && n.is_finite()
        && v.contains('.')
    {
        return serde_json::Value::from(n);
    }
    serde_json::Value::String(value.to_owned())
}

fn describe_figment_error(path: &[String], kind: &figment::error::Kind) -> String {
    let dotted = path.join(".");
    let env_name = format!("NVE_{}", path.join("__").to_ascii_uppercase());
    format!("{dotted} ({env_name}): {kind}")
}

/// In `dev`, a JWT secret is generated once and kept in the data directory so tokens survive
/// restarts without anyone having to invent a secret; strict profiles must configure one.
pub fn ensure_dev_jwt_secret(config: &mut Config) -> std::io::Result<()> {
    if config.auth.jwt_secret.is_some() {
        return Ok(());
    }
    let path = config.data_dir.join("secrets").join("jwt-secret");
    let secret = read_or_create_secret(&path)?;
    config.auth.jwt_secret = Some(Secret::new(secret));
    Ok(())
}

fn read_or_create_secret(path: &Path) -> std::io::Result<String> {
    if let Ok(existing) = std::fs::read_to_string(path) {
        let existing = existing.trim().to_owned();
        if existing.len() >= validate::MIN_JWT_SECRET_BYTES {
            return Ok(existing);
        }
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let bytes: [u8; 32] = rand::random();
    let secret = hex::encode(bytes);
    write_private(path, &secret)?;
    Ok(secret)
}

#[cfg(unix)]
fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(contents.as_bytes())
}

#[cfg(not(unix))]
fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    std::fs::write(path, contents)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn opts_no_file() -> LoadOptions {
        LoadOptions {
            file: None,
            ..Default::default()
        }
    }

    #[test]
    fn dev_defaults_load_without_anything() {
        let loaded = load_from(&opts_no_file(), &env(&[])).expect("defaults are valid");
        assert_eq!(loaded.profile, Profile::Dev);
        assert_eq!(loaded.config.server.bind, "127.0.0.1:8080");
        assert!(loaded.config.database.auto_migrate);
        assert!(loaded.config.database_url().starts_with("sqlite://"));
    }

    #[test]
    fn env_overrides_nested_keys_and_types() {
        let loaded = load_from(
            &opts_no_file(),
            &env(&[
                ("NVE_SERVER__BIND", "0.0.0.0:9000"),
                ("NVE_SERVER__DOCS", "false"),
                ("NVE_AUTH__LOGIN_ATTEMPTS_PER_MINUTE", "3"),
                ("NVE_DATA_DIR", "/tmp/x"),
                ("NVE_TEST_POSTGRES_URL", "ignored"),
                ("OTHER", "ignored"),
            ]),
        )
        .expect("valid");
        assert_eq!(loaded.config.server.bind, "0.0.0.0:9000");
        assert!(!loaded.config.server.docs);
        assert_eq!(loaded.config.auth.login_attempts_per_minute, 3);
        assert_eq!(loaded.config.data_dir, PathBuf::from("/tmp/x"));
    }

    #[test]
    fn profile_tables_in_file_apply_to_their_profile_only() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("nve.toml");
        std::fs::write(
            &file,
            r#"
[default.server]
bind = "127.0.0.1:7000"
[staging.server]
bind = "0.0.0.0:7001"
[staging.database]
url = "postgres://nve:pw@db/nve"
[staging.auth]
jwt_secret = "0123456789abcdef0123456789abcdef-staging"
"#,
        )
        .expect("write");
        let opts = LoadOptions {
            file: Some(file.clone()),
            ..Default::default()
        };
        let dev = load_from(&opts, &env(&[])).expect("dev valid");
        assert_eq!(dev.config.server.bind, "127.0.0.1:7000");
        let staging = load_from(&opts, &env(&[("NVE_PROFILE", "staging")])).expect("staging valid");
        assert_eq!(staging.config.server.bind, "0.0.0.0:7001");
        assert!(!staging.config.database.auto_migrate);
        // Environment beats the file.
        let env_wins = load_from(
            &opts,
            &env(&[
                ("NVE_PROFILE", "staging"),
                ("NVE_SERVER__BIND", "0.0.0.0:7002"),
            ]),
        )
        .expect("valid");
        assert_eq!(env_wins.config.server.bind, "0.0.0.0:7002");
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let err = load_from(
            &opts_no_file(),
            &env(&[
                ("NVE_PROFILE", "prod"),
                ("NVE_AUTH__JWT_SECRET", "tiny-xyz"),
                ("NVE_SERVER__BIND", "not an address"),
                ("NVE_QUEUE__BACKEND", "redis"),
                ("NVE_SERVER__MAX_JSON_BODY_BYTES", "0"),
            ]),
        )
        .expect_err("invalid");
        let text = err.to_string();
        assert!(text.contains("database.url"), "{text}");
        assert!(text.contains("auth.jwt_secret"), "{text}");
        assert!(text.contains("server.bind"), "{text}");
        assert!(text.contains("queue.redis_url"), "{text}");
        assert!(text.contains("server.max_json_body_bytes"), "{text}");
        assert!(err.problems.len() >= 5, "{:?}", err.problems);
        assert!(!text.contains("tiny-xyz"), "secret leaked: {text}");
    }

    #[test]
    fn unknown_profile_and_keys_and_wrong_types_are_reported() {
        let err = load_from(
            &opts_no_file(),
            &env(&[
                ("NVE_PROFILE", "qa"),
                ("NVE_SERVER__NOPE", "1"),
                ("NVE_DATABASE__MAX_CONNECTIONS", "many"),
            ]),
        )
        .expect_err("invalid");
        let text = err.to_string();
        assert!(text.contains("unknown profile `qa`"), "{text}");
        assert!(text.contains("server.nope"), "{text}");
        assert!(text.contains("database.max_connections"), "{text}");
    }

    #[test]
    fn redaction_hides_secrets_and_passwords() {
        let loaded = load_from(
            &opts_no_file(),
            &env(&[
                (
                    "NVE_AUTH__JWT_SECRET",
                    "a-very-long-secret-value-of-more-than-32-bytes",
                ),
                ("NVE_DATABASE__URL", "postgres://nve:hunter2@db:5432/nve"),
            ]),
        )
        .expect("valid");
        let text = loaded.config.redacted_json().to_string();
        assert!(!text.contains("a-very-long-secret"), "{text}");
        assert!(!text.contains("hunter2"), "{text}");
        assert!(
            text.contains("postgres://nve:[redacted]@db:5432/nve"),
            "{text}"
        );
        assert!(format!("{:?}", loaded.config).find("hunter2").is_none());
    }

    #[test]
    fn the_example_file_is_valid_and_complete() {
        let example = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../nve.example.toml");
        let opts = LoadOptions {
            file: Some(example.clone()),
            ..Default::default()
        };
        let dev = load_from(&opts, &env(&[])).expect("example is valid in dev");
        assert_eq!(dev.config.log.format, LogFormat::Pretty);
        // Every key of the tree is documented in the example, commented out or not.
        let text = std::fs::read_to_string(&example).expect("read example");
        fn leaves(v: &serde_json::Value, path: &str, out: &mut Vec<String>) {
            match v.as_object() {
                Some(map) => {
                    for (k, child) in map {
                        let p = if path.is_empty() {
                            k.clone()
                        } else {
                            format!("{path}__{k}")
                        };
                        leaves(child, &p, out);
                    }
                }
                None => out.push(format!("NVE_{}", path.to_ascii_uppercase())),
            }
        }
        let mut keys = Vec::new();
        leaves(
            &Config::defaults(Profile::Dev).redacted_json(),
            "",
            &mut keys,
        );
        for key in keys {
            assert!(
                text.contains(&key),
                "{key} is not documented in nve.example.toml"
            );
        }
    }

    #[test]
    fn dev_secret_is_generated_once_and_reused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut config = Config::defaults(Profile::Dev);
        config.data_dir = dir.path().to_path_buf();
        ensure_dev_jwt_secret(&mut config).expect("create");
        let first = config.auth.jwt_secret.clone().expect("set");
        let mut again = Config::defaults(Profile::Dev);
        again.data_dir = dir.path().to_path_buf();
        ensure_dev_jwt_secret(&mut again).expect("read");
        assert_eq!(first.expose(), again.auth.jwt_secret.expect("set").expose());
        assert!(first.expose().len() >= 32);
    }
}
