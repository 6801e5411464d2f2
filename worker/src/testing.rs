//! Databases for tests: a fresh PostgreSQL database per test (dropped afterwards) or a fresh
//! SQLite file, migrated. Compiled only with the `test-support` feature.

use sea_orm::{ConnectionTrait, Database, DatabaseConnection};

/// The server tests create their databases on (`NVE_TEST_POSTGRES_URL`, default the local one).
pub fn postgres_admin_url() -> String {
    std::env::var("NVE_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

/// A fresh PostgreSQL database, dropped when this value is dropped.
pub struct PgDatabase {
    pub name: String,
    pub url: String,
}

impl PgDatabase {
    pub async fn create() -> Self {
        let admin = postgres_admin_url();
        let name = format!("nve_test_{}", uuid::Uuid::new_v4().simple());
        let conn = Database::connect(&admin)
            .await
            .expect("connect to PostgreSQL (is it running?)");
        conn.execute_unprepared(&format!("CREATE DATABASE {name}"))
            .await
            .expect("create database");
        conn.close().await.ok();
        let base = admin
            .rsplit_once('/')
            .map(|(b, _)| b.to_owned())
            .unwrap_or(admin);
        Self {
            url: format!("{base}/{name}"),
            name,
        }
    }
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        let name = self.name.clone();
        // Drop runs outside async context; a thread with its own runtime keeps it simple.
        let handle = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            rt.block_on(async {
                let conn = Database::connect(postgres_admin_url()).await.ok()?;
                conn.execute_unprepared(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .await
                    .ok()?;
                conn.close().await.ok()
            })
        });
        let _ = handle.join();
    }
}

/// A migrated database of either kind for library tests; keeps what it needs alive.
pub struct TestDb {
    pub conn: DatabaseConnection,
    _pg: Option<PgDatabase>,
    _dir: Option<tempfile::TempDir>,
}

impl TestDb {
    pub async fn sqlite() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("t.db").display());
        let mut config = nve_config::Config::defaults(nve_config::Profile::Dev);
        config.database.url = Some(nve_config::DatabaseUrl::new(url));
        config.data_dir = dir.path().to_path_buf();
        let conn = crate::db::connect(&config).await.expect("connect");
        migrate(&conn).await;
        Self {
            conn,
            _pg: None,
            _dir: Some(dir),
        }
    }

    pub async fn postgres() -> Self {
        let pg = PgDatabase::create().await;
        let conn = Database::connect(&pg.url).await.expect("connect");
        migrate(&conn).await;
        Self {
            conn,
            _pg: Some(pg),
            _dir: None,
        }
    }
}

async fn migrate(conn: &DatabaseConnection) {
    use nve_migration::MigratorTrait;
    nve_migration::Migrator::up(conn, None)
        .await
        .expect("migrations");
}

/// A real S3-compatible server for tests: moto's server mode, started on a free port with a
/// fresh bucket and stopped on drop. Found at `NVE_TEST_MOTO_SERVER` or in the virtualenv
/// `./dev.sh test` installs (`~/.cache/nve/moto-venv`).
pub struct S3Server {
    pub endpoint: String,
    pub bucket: String,
    child: std::process::Child,
}

impl S3Server {
    pub async fn start() -> Self {
        let program = std::env::var("NVE_TEST_MOTO_SERVER").unwrap_or_else(|_| {
            let home = std::env::var("HOME").unwrap_or_else(|_| "/root".into());
            format!("{home}/.cache/nve/moto-venv/bin/moto_server")
        });
        assert!(
            std::path::Path::new(&program).is_file(),
            "moto_server not found at {program}: run ./dev.sh test once, or \
             `python3 -m venv ~/.cache/nve/moto-venv && ~/.cache/nve/moto-venv/bin/pip install 'moto[server]>=5,<6'`"
        );
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("free port");
        let child = std::process::Command::new(&program)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start moto_server");
        let endpoint = format!("http://127.0.0.1:{port}");
        let bucket = format!("nve-test-{}", uuid::Uuid::new_v4().simple());
        let server = Self {
            endpoint,
            bucket,
            child,
        };
        crate::install_tls_provider();
        let client = reqwest::Client::new();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        loop {
            // moto takes any credentials; creating the bucket is a plain PUT.
            let created = client
                .put(format!("{}/{}", server.endpoint, server.bucket))
                .send()
                .await;
            if created.is_ok_and(|r| r.status().is_success()) {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "moto_server did not start"
            );
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        server
    }

    /// The `NVE_STORAGE__*` settings that point nve at this server.
    pub fn env(&self) -> Vec<(String, String)> {
        [
            ("NVE_STORAGE__BACKEND", "s3"),
            ("NVE_STORAGE__S3_BUCKET", self.bucket.as_str()),
            ("NVE_STORAGE__S3_ENDPOINT", self.endpoint.as_str()),
            ("NVE_STORAGE__S3_ALLOW_HTTP", "true"),
            ("NVE_STORAGE__S3_ACCESS_KEY_ID", "test"),
            ("NVE_STORAGE__S3_SECRET_ACCESS_KEY", "test"),
            ("NVE_STORAGE__S3_PREFIX", "media"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
    }

    /// The keys in the bucket (ListObjectsV2, first 1000), read with plain HTTP so the test
    /// does not trust the code under test.
    pub async fn keys(&self) -> Vec<String> {
        let text = reqwest::Client::new()
            .get(format!("{}/{}?list-type=2", self.endpoint, self.bucket))
            .send()
            .await
            .expect("list bucket")
            .text()
            .await
            .expect("list body");
        text.split("<Key>")
            .skip(1)
            .filter_map(|s| s.split("</Key>").next())
            .map(str::to_owned)
            .collect()
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
