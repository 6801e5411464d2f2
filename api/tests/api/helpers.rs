use nve_api::app::Application;
use nve_config::LoadOptions;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tokio::sync::oneshot;

pub const JWT_SECRET: &str = "test-secret-0123456789abcdef0123456789abcdef";

#[derive(Debug, Clone, Copy)]
pub enum Db {
    Sqlite,
    Postgres,
}

/// Runs one async test body against both databases.
#[macro_export]
macro_rules! both_dbs {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() {
                    super::$name($crate::helpers::Db::Sqlite).await
                }
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres() {
                    super::$name($crate::helpers::Db::Postgres).await
                }
            }
        )*
    };
}

pub use nve_worker::testing::PgDatabase;

pub struct TestApp {
    pub base: String,
    /// The running server's shared state, for tests that act as another part of the system.
    pub state: nve_api::state::AppState,
    pub client: reqwest::Client,
    _data_dir: tempfile::TempDir,
    shutdown: Option<oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<()>>,
    // Dropped last: the server must be gone before its database.
    _pg: Option<std::sync::Arc<PgDatabase>>,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(h) = self.server.take() {
            h.abort();
        }
    }
}

pub async fn spawn_app(db: Db) -> TestApp {
    spawn_app_with(db, &[]).await
}

/// Starts the real application with configuration built the same way `nve serve` builds it,
/// from `NVE_*` variables (passed explicitly, not through the process environment).
pub async fn spawn_app_with(db: Db, extra_env: &[(&str, &str)]) -> TestApp {
    let pg = match db {
        Db::Postgres => Some(std::sync::Arc::new(PgDatabase::create().await)),
        Db::Sqlite => None,
    };
    spawn_app_on(pg, extra_env).await
}

/// Two API replicas on one PostgreSQL database, fanning events out through Redis under a
/// key prefix of their own: the distributed mode.
pub async fn spawn_replicas() -> (TestApp, TestApp) {
    let pg = std::sync::Arc::new(PgDatabase::create().await);
    let prefix = format!("nve-test-{}", uuid::Uuid::new_v4().simple());
    let env = [
        ("NVE_QUEUE__BACKEND", "redis"),
        ("NVE_QUEUE__REDIS_URL", "redis://127.0.0.1:6379/0"),
        ("NVE_QUEUE__REDIS_PREFIX", prefix.as_str()),
    ];
    let a = spawn_app_on(Some(pg.clone()), &env).await;
    let b = spawn_app_on(Some(pg), &env).await;
    (a, b)
}

pub async fn spawn_app_on(
    pg: Option<std::sync::Arc<PgDatabase>>,
    extra_env: &[(&str, &str)],
) -> TestApp {
    if std::env::var_os("NVE_TEST_LOG").is_some() {
        nve_api::telemetry::init(&nve_config::LogConfig {
            format: nve_config::LogFormat::Pretty,
            level: "debug".into(),
        });
    }
    let data_dir = tempfile::tempdir().expect("tempdir");
    let db_url = match &pg {
        Some(pg) => pg.url.clone(),
        None => format!(
            "sqlite://{}?mode=rwc",
            data_dir.path().join("test.db").display()
        ),
    };
    let mut env: Vec<(String, String)> = vec![
        ("NVE_DATA_DIR".into(), data_dir.path().display().to_string()),
        ("NVE_SERVER__BIND".into(), "127.0.0.1:0".into()),
        ("NVE_DATABASE__URL".into(), db_url),
        ("NVE_AUTH__JWT_SECRET".into(), JWT_SECRET.into()),
        (
            "NVE_UI__DIST_DIR".into(),
            data_dir.path().join("no-ui").display().to_string(),
        ),
    ];
    env.extend(
        extra_env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string())),
    );
    let loaded =
        nve_config::load_from(&LoadOptions::default(), &env).expect("test config is valid");
    let app = Application::build(loaded)
        .await
        .expect("application starts");
    let addr = app.local_addr();
    let state = app.state().clone();
    let (tx, rx) = oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        let _ = app
            .run_until_stopped(async {
                let _ = rx.await;
            })
            .await;
    });
    TestApp {
        base: format!("http://{addr}"),
        state,
        client: reqwest::Client::new(),
        _data_dir: data_dir,
        shutdown: Some(tx),
        server: Some(server),
        _pg: pg,
    }
}

/// A response reduced to what tests assert on.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
    pub text: String,
}

impl Reply {
    pub fn content_type(&self) -> &str {
        self.headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    /// Asserts an RFC 9457 problem with this status and code.
    pub fn assert_problem(&self, status: u16, code: &str) {
        assert_eq!(self.status.as_u16(), status, "body: {}", self.text);
        assert_eq!(
            self.content_type(),
            "application/problem+json",
            "body: {}",
            self.text
        );
        assert_eq!(self.body["code"], code, "body: {}", self.text);
        assert_eq!(self.body["status"], status);
        assert_eq!(self.body["type"], format!("urn:nve:problem:{code}"));
        assert!(self.body["title"].is_string());
        assert!(self.body["detail"].is_string());
    }
}

pub struct Session {
    pub user_id: String,
    pub token: String,
    pub refresh: String,
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub async fn send(&self, req: reqwest::RequestBuilder) -> Reply {
        let resp = req.send().await.expect("request sent");
        let status = resp.status();
        let headers = resp.headers().clone();
        let text = resp.text().await.expect("body");
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Reply {
            status,
            headers,
            body,
            text,
        }
    }

    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Reply {
        let mut req = self.client.request(method, self.url(path));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        self.send(req).await
    }

    pub async fn get(&self, path: &str, token: &str) -> Reply {
        self.call(Method::GET, path, Some(token), None).await
    }

    pub async fn post(&self, path: &str, token: Option<&str>, body: Value) -> Reply {
        self.call(Method::POST, path, token, Some(body)).await
    }

    pub async fn register(&self, email: &str) -> Reply {
        self.post(
            "/v1/auth/register",
            None,
            json!({"email": email, "password": "correct horse battery", "display_name": email}),
        )
        .await
    }

    pub async fn login(&self, email: &str, password: &str) -> Reply {
        self.post(
            "/v1/auth/login",
            None,
            json!({"email": email, "password": password}),
        )
        .await
    }

    /// Registers `email` and logs in.
    pub async fn user(&self, email: &str) -> Session {
        let r = self.register(email).await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
        let l = self.login(email, "correct horse battery").await;
        assert_eq!(l.status, StatusCode::OK, "{}", l.text);
        Session {
            user_id: r.body["id"].as_str().expect("id").to_owned(),
            token: l.body["access_token"].as_str().expect("token").to_owned(),
            refresh: l.body["refresh_token"]
                .as_str()
                .expect("refresh")
                .to_owned(),
        }
    }

    pub async fn project(&self, owner: &Session, name: &str) -> String {
        let r = self
            .post("/v1/projects", Some(&owner.token), json!({"name": name}))
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
        r.body["id"].as_str().expect("id").to_owned()
    }
}
