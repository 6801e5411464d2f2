//! The `nve` command line. Exit codes: 0 success, 1 failure, 2 invalid configuration,
//! 3 migrations pending where the profile forbids applying them at start-up.

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use nve_config::{LoadOptions, Loaded};
use nve_migration::{Migrator, MigratorTrait};

use crate::app::{Application, shutdown_signal};
use crate::domain::{Email, Password};

#[derive(Parser)]
#[command(
    name = "nve",
    version,
    about = "native-video-editor: video editing and rendering service"
)]
struct Cli {
    /// Configuration file (default: NVE_CONFIG, else ./nve.toml when present).
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    /// Profile: dev, staging or prod (default: NVE_PROFILE, else dev).
    #[arg(long, global = true)]
    profile: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the service: API, UI and (embedded mode) workers.
    Serve {
        /// Listen address, e.g. 0.0.0.0:8080 (overrides server.bind).
        #[arg(long)]
        bind: Option<String>,
        /// Data directory for the embedded database, media and secrets (overrides data_dir).
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
    /// Database migrations.
    Migrate {
        #[command(subcommand)]
        action: MigrateAction,
    },
    /// Print the OpenAPI document (JSON).
    Openapi,
    /// Configuration tools.
    Config {
        #[command(subcommand)]
        action: ConfigAction,
    },
    /// Operator tasks.
    Admin {
        #[command(subcommand)]
        action: AdminAction,
    },
    /// Render a timeline document to a file, offline: sources are file paths in place of
    /// asset ids. Prints a summary line; progress goes to stderr.
    Render {
        /// The timeline document (JSON, the API's wire form).
        timeline: PathBuf,
        /// The output file (default: the document's name with the profile's extension).
        #[arg(short, long)]
        output: Option<PathBuf>,
        /// A preset (h264, h265, vp9, av1, prores, gif, webp, aac, wav, mp3, flac, png, jpeg,
        /// poster, …) or a JSON profile document.
        #[arg(long, default_value = "h264")]
        profile: String,
        /// Only this part of the timeline, in seconds: START..END.
        #[arg(long)]
        range: Option<String>,
        /// Encoders: auto (hardware when one works), off, vaapi, nvcodec.
        #[arg(long, default_value = "auto")]
        hardware: String,
        /// Print the render plan instead of rendering.
        #[arg(long)]
        print_plan: bool,
        /// Encode everything, even GOPs a cut-only document could copy.
        #[arg(long)]
        no_smart: bool,
    },
    /// Run one piece of isolated work and report JSON lines on stdout (used by workers).
    #[command(hide = true)]
    Exec {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
}

#[derive(Subcommand)]
enum MigrateAction {
    /// Apply all pending migrations.
    Up,
    /// Roll back the last N migrations (default 1).
    Down {
        #[arg(long, default_value_t = 1)]
        steps: u32,
    },
    /// List applied and pending migrations.
    Status,
}

#[derive(Subcommand)]
enum ConfigAction {
    /// Validate the configuration and print the effective values with secrets redacted.
    Check,
}

#[derive(Subcommand)]
enum AdminAction {
    /// Create a user. The password is read from standard input (one line).
    CreateUser {
        #[arg(long)]
        email: String,
        #[arg(long)]
        display_name: String,
    },
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    // Isolated children need no runtime, configuration or logging of their own.
    if let Command::Exec { args } = &cli.command {
        return nve_worker::child::main(args);
    }
    // Rendering is synchronous GStreamer work; it needs no runtime or configuration.
    if let Command::Render {
        timeline,
        output,
        profile,
        range,
        hardware,
        print_plan,
        no_smart,
    } = &cli.command
    {
        return crate::render_cli::main(&crate::render_cli::RenderArgs {
            timeline,
            output: output.as_deref(),
            profile,
            range: range.as_deref(),
            hardware,
            print_plan: *print_plan,
            no_smart: *no_smart,
        });
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(run(cli))
}

fn load(cli: &Cli, overrides: Vec<(String, String)>) -> Result<Loaded, ExitCode> {
    let opts = LoadOptions {
        profile: cli.profile.clone(),
        file: cli.config.clone(),
        overrides,
    };
    nve_config::load(&opts).map_err(|e| {
        eprintln!("{e}");
        ExitCode::from(2)
    })
}

fn out(text: &str) -> ExitCode {
    let mut stdout = std::io::stdout().lock();
    match writeln!(stdout, "{text}") {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("cannot write to stdout: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> ExitCode {
    match &cli.command {
        Command::Serve { bind, data_dir } => {
            let mut overrides = Vec::new();
            if let Some(b) = bind {
                overrides.push(("server.bind".to_owned(), b.clone()));
            }
            if let Some(d) = data_dir {
                overrides.push(("data_dir".to_owned(), d.display().to_string()));
            }
            let loaded = match load(&cli, overrides) {
                Ok(l) => l,
                Err(code) => return code,
            };
            crate::telemetry::init(&loaded.config.log);
            serve(loaded).await
        }
        Command::Migrate { action } => {
            let loaded = match load(&cli, Vec::new()) {
                Ok(l) => l,
                Err(code) => return code,
            };
            crate::telemetry::init(&loaded.config.log);
            migrate(loaded, action).await
        }
        Command::Openapi => out(&crate::routes::spec_json(None)),
        Command::Config {
            action: ConfigAction::Check,
        } => match load(&cli, Vec::new()) {
            Ok(loaded) => {
                let doc = serde_json::json!({
                    "profile": loaded.profile.as_str(),
                    "file": loaded.file.map(|f| f.display().to_string()),
                    "config": loaded.config.redacted_json(),
                });
                out(&serde_json::to_string_pretty(&doc).unwrap_or_default())
            }
            Err(code) => code,
        },
        Command::Admin {
            action:
                AdminAction::CreateUser {
                    email,
                    display_name,
                },
        } => {
            let loaded = match load(&cli, Vec::new()) {
                Ok(l) => l,
                Err(code) => return code,
            };
            create_user(loaded, email, display_name).await
        }
        Command::Exec { args } => nve_worker::child::main(args),
        Command::Render { .. } => fail_render_in_runtime(),
    }
}

async fn serve(loaded: Loaded) -> ExitCode {
    let app = match Application::build(loaded).await {
        Ok(app) => app,
        Err(e) => {
            tracing::error!(error = %e, "cannot start");
            eprintln!("nve: {e}");
            return ExitCode::from(e.exit_code());
        }
    };
    match app.run_until_stopped(shutdown_signal()).await {
        Ok(()) => {
            tracing::info!("stopped");
            ExitCode::SUCCESS
        }
        Err(e) => {
            tracing::error!(error = %e, "server failed");
            ExitCode::FAILURE
        }
    }
}

async fn migrate(loaded: Loaded, action: &MigrateAction) -> ExitCode {
    let db = match nve_worker::db::connect(&loaded.config).await {
        Ok(db) => db,
        Err(e) => {
            eprintln!("nve: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = match action {
        MigrateAction::Up => Migrator::up(&db, None)
            .await
            .map(|()| "migrations applied".to_owned()),
        MigrateAction::Down { steps } => Migrator::down(&db, Some(*steps))
            .await
            .map(|()| format!("rolled back {steps} migration(s)")),
        MigrateAction::Status => status(&db).await,
    };
    match result {
        Ok(text) => out(&text),
        Err(e) => {
            eprintln!("nve: migrations: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn status(db: &sea_orm::DatabaseConnection) -> Result<String, sea_orm::DbErr> {
    let applied = Migrator::get_applied_migrations(db).await?;
    let pending = Migrator::get_pending_migrations(db).await?;
    let mut lines = Vec::new();
    for m in &applied {
        lines.push(format!("applied  {}", m.name()));
    }
    for m in &pending {
        lines.push(format!("pending  {}", m.name()));
    }
    lines.push(format!(
        "{} applied, {} pending",
        applied.len(),
        pending.len()
    ));
    Ok(lines.join("\n"))
}

async fn create_user(loaded: Loaded, email: &str, display_name: &str) -> ExitCode {
    let mut line = String::new();
    if let Err(e) = std::io::stdin().read_to_string(&mut line) {
        eprintln!("nve: cannot read the password from stdin: {e}");
        return ExitCode::FAILURE;
    }
    let password = line.trim_end_matches(['\r', '\n']);
    let checked = (
        Email::parse(email),
        Password::parse(password),
        crate::domain::display_name(display_name),
    );
    let (email, password, name) = match checked {
        (Ok(e), Ok(p), Ok(n)) => (e, p, n),
        (e, p, n) => {
            for (field, problem) in [
                ("--email", e.err()),
                ("password (stdin)", p.err()),
                ("--display-name", n.err()),
            ] {
                if let Some((_, message)) = problem {
                    eprintln!("nve: {field}: {message}");
                }
            }
            return ExitCode::from(2);
        }
    };
    let db = match nve_worker::db::connect(&loaded.config).await {
        Ok(db) => db,
        Err(e) => {
            eprintln!("nve: {e}");
            return ExitCode::FAILURE;
        }
    };
    match Migrator::get_pending_migrations(&db).await {
        Ok(p) if p.is_empty() => {}
        Ok(_) => {
            eprintln!("nve: the database has pending migrations; run `nve migrate up` first");
            return ExitCode::from(3);
        }
        Err(e) => {
            eprintln!("nve: {e}");
            return ExitCode::FAILURE;
        }
    }
    match crate::routes::accounts::create_user(&db, &email, &password, &name).await {
        Ok(user) => out(&format!("created user {} <{}>", user.id, user.email)),
        Err(e) => {
            eprintln!("nve: {}", e.detail);
            ExitCode::FAILURE
        }
    }
}

/// `main` handles `render` before starting the runtime; reaching here is a bug.
fn fail_render_in_runtime() -> ExitCode {
    eprintln!("nve render must run outside the async runtime");
    ExitCode::FAILURE
}
