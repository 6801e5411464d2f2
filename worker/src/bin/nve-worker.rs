//! `nve-worker`: the distributed mode's job consumer. Today it offers the operator's canary,
//! `nve-worker check`, which verifies configuration and every dependency a worker needs.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "nve-worker", version, about = "nve job worker")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Load the configuration, connect to the database, queue backend and storage, check
    /// GStreamer's elements, and print the report as JSON. Exit 0 when everything is ready.
    Check,
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Check => check().await,
    }
}

async fn check() -> ExitCode {
    let loaded = match nve_config::load(&nve_config::LoadOptions::default()) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let config = loaded.config;
    let db = match nve_worker::db::connect(&config).await {
        Ok(db) => db,
        Err(e) => {
            eprintln!("database: {e}");
            return ExitCode::FAILURE;
        }
    };
    let storage = match nve_worker::storage::LocalStorage::open(config.storage_path()) {
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
