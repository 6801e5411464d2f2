//! The `nve` binary as an operator meets it.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const NVE: &str = env!("CARGO_BIN_EXE_nve");

/// `nve` with a clean environment: only what the test passes, so the developer's own NVE_*
/// variables cannot leak in.
fn nve(dir: &std::path::Path, env: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new(NVE);
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("NVE_DATA_DIR", dir.join("data"))
        .env("NVE_LOG__LEVEL", "warn")
        .current_dir(dir);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd
}

#[test]
fn broken_configuration_exits_2_listing_every_problem() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = nve(
        dir.path(),
        &[
            ("NVE_PROFILE", "prod"),
            ("NVE_AUTH__JWT_SECRET", "tiny"),
            ("NVE_SERVER__BIND", "nowhere"),
            ("NVE_QUEUE__BACKEND", "redis"),
            ("NVE_SERVER__UNKNOWN_KEY", "1"),
        ],
    )
    .arg("serve")
    .output()
    .expect("run nve");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    for needle in [
        "database.url",
        "auth.jwt_secret",
        "server.bind",
        "queue.redis_url",
        "server.unknown_key",
    ] {
        assert!(err.contains(needle), "missing {needle} in:\n{err}");
    }
    assert!(!err.contains("tiny"), "secret echoed:\n{err}");

    let out = nve(dir.path(), &[("NVE_PROFILE", "qa")])
        .args(["config", "check"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown profile `qa`"));
}

#[test]
fn config_check_prints_effective_values_with_secrets_redacted() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("nve.toml"),
        "[default.server]\nbind = \"127.0.0.1:9999\"\n[prod.server]\ndocs = false\n",
    )
    .expect("write toml");
    let out = nve(
        dir.path(),
        &[
            ("NVE_PROFILE", "prod"),
            (
                "NVE_AUTH__JWT_SECRET",
                "supersecretvalue-supersecretvalue-123",
            ),
            (
                "NVE_DATABASE__URL",
                "postgres://nve:hunter2@db.internal:5432/nve",
            ),
        ],
    )
    .args(["config", "check"])
    .output()
    .expect("run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let doc: serde_json::Value = serde_json::from_str(&text).expect("json");
    assert_eq!(doc["profile"], "prod");
    assert_eq!(doc["config"]["server"]["bind"], "127.0.0.1:9999");
    assert_eq!(doc["config"]["server"]["docs"], false);
    assert_eq!(doc["config"]["auth"]["jwt_secret"], "[redacted]");
    assert_eq!(
        doc["config"]["database"]["url"],
        "postgres://nve:[redacted]@db.internal:5432/nve"
    );
    assert!(!text.contains("hunter2") && !text.contains("supersecretvalue"));
}

#[test]
fn migrations_are_explicit_outside_dev() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = format!("sqlite://{}?mode=rwc", dir.path().join("p.db").display());
    let env = [
        ("NVE_PROFILE", "prod"),
        (
            "NVE_AUTH__JWT_SECRET",
            "0123456789abcdef0123456789abcdef-prod",
        ),
        ("NVE_DATABASE__URL", db.as_str()),
        ("NVE_SERVER__BIND", "127.0.0.1:0"),
    ];
    let refused = nve(dir.path(), &env).arg("serve").output().expect("run");
    assert_eq!(
        refused.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
    assert!(String::from_utf8_lossy(&refused.stderr).contains("nve migrate up"));

    let total = {
        use nve_migration::MigratorTrait;
        nve_migration::Migrator::migrations().len()
    };
    let status = nve(dir.path(), &env)
        .args(["migrate", "status"])
        .output()
        .expect("run");
    assert!(
        String::from_utf8_lossy(&status.stdout).contains(&format!("0 applied, {total} pending"))
    );
    let up = nve(dir.path(), &env)
        .args(["migrate", "up"])
        .output()
        .expect("run");
    assert!(
        up.status.success(),
        "{}",
        String::from_utf8_lossy(&up.stderr)
    );
    let status = nve(dir.path(), &env)
        .args(["migrate", "status"])
        .output()
        .expect("run");
    assert!(
        String::from_utf8_lossy(&status.stdout).contains(&format!("{total} applied, 0 pending"))
    );

    // admin create-user reads the password from stdin; a duplicate fails.
    for expect_ok in [true, false] {
        let mut child = nve(dir.path(), &env)
            .args([
                "admin",
                "create-user",
                "--email",
                "ops@example.org",
                "--display-name",
                "Ops",
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(b"a long enough password\n")
            .expect("write");
        let out = child.wait_with_output().expect("wait");
        assert_eq!(
            out.status.success(),
            expect_ok,
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    let down = nve(dir.path(), &env)
        .args(["migrate", "down"])
        .output()
        .expect("run");
    assert!(
        down.status.success(),
        "{}",
        String::from_utf8_lossy(&down.stderr)
    );
    let status = nve(dir.path(), &env)
        .args(["migrate", "status"])
        .output()
        .expect("run");
    assert!(
        String::from_utf8_lossy(&status.stdout)
            .contains(&format!("{} applied, 1 pending", total - 1))
    );
}

#[test]
fn openapi_command_prints_the_document() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = nve(dir.path(), &[]).arg("openapi").output().expect("run");
    assert!(out.status.success());
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert!(doc["paths"]["/projects"].is_object());
}

#[test]
fn serve_drains_and_exits_cleanly_on_sigterm() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut child = nve(dir.path(), &[("NVE_LOG__LEVEL", "info")])
        .args(["serve", "--bind", "127.0.0.1:0"])
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("spawn");
    let stderr = child.stderr.take().expect("stderr");
    let mut lines = BufReader::new(stderr).lines();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut addr = None;
    while Instant::now() < deadline {
        let Some(Ok(line)) = lines.next() else { break };
        if let Ok(v) = serde_json::from_str::<serde_json::Value>(&line)
            && v["message"] == "nve listening"
        {
            addr = v["addr"].as_str().map(str::to_owned);
            break;
        }
    }
    let addr = addr.expect("server announced its address");
    // The embedded defaults created the database, media directory and a dev secret.
    assert!(dir.path().join("data/nve.db").exists());
    assert!(dir.path().join("data/secrets/jwt-secret").exists());
    let mut stream = std::net::TcpStream::connect(&addr).expect("connect");
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .expect("write");
    let mut resp = String::new();
    std::io::Read::read_to_string(&mut stream, &mut resp).expect("read");
    assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");

    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(killed.success());
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            assert!(status.success(), "exit status {status}");
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "did not stop after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // Drain the rest of the log so the shutdown line is there.
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    assert!(
        rest.iter().any(|l| l.contains("shutdown requested")),
        "{rest:?}"
    );
}
