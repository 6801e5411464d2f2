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
