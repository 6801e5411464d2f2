use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::both_dbs;
use crate::helpers::{Db, JWT_SECRET, spawn_app, spawn_app_with};

both_dbs!(
    register_login_refresh_logout,
    duplicate_and_bad_registrations,
    wrong_credentials_are_indistinguishable,
    forged_and_foreign_tokens_are_rejected,
    api_keys_work_until_revoked,
    login_is_rate_limited,
    registration_can_be_closed,
    api_key_creation_is_rate_limited,
);

async fn api_key_creation_is_rate_limited(db: Db) {
    let app = spawn_app_with(db, &[("NVE_AUTH__API_KEY_CREATIONS_PER_MINUTE", "2")]).await;
    let a = app.user("keys@example.org").await;
    let b = app.user("other-keys@example.org").await;
    for i in 0..2 {
        let r = app
            .post(
                "/v1/api-keys",
                Some(&a.token),
                json!({"name": format!("k{i}")}),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    }
    let limited = app
        .post("/v1/api-keys", Some(&a.token), json!({"name": "k3"}))
        .await;
    limited.assert_problem(429, "rate-limited");
    assert!(limited.headers.contains_key("retry-after"));
    // The limit is per user.
    let r = app
        .post("/v1/api-keys", Some(&b.token), json!({"name": "b"}))
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    assert_eq!(
        app.get("/v1/api-keys", &a.token)
            .await
            .body
            .as_array()
            .map(Vec::len),
        Some(2)
    );
}

async fn register_login_refresh_logout(db: Db) {
    let app = spawn_app(db).await;
    let s = app.user("ada@example.org").await;
    let me = app.get("/v1/me", &s.token).await;
    assert_eq!(me.status, StatusCode::OK);
    assert_eq!(me.body["email"], "ada@example.org");
    assert!(me.body.get("password_hash").is_none());

    // Refresh rotates: a new pair comes back and the old refresh token is spent.
    let r1 = app
        .post(
            "/v1/auth/refresh",
            None,
            json!({"refresh_token": s.refresh}),
        )
        .await;
    assert_eq!(r1.status, StatusCode::OK, "{}", r1.text);
    let new_refresh = r1.body["refresh_token"]
        .as_str()
        .expect("refresh")
        .to_owned();
    assert_ne!(new_refresh, s.refresh);
    let new_access = r1.body["access_token"].as_str().expect("access").to_owned();
    assert_eq!(app.get("/v1/me", &new_access).await.status, StatusCode::OK);

    // Replaying the spent token revokes the whole family, including the token that replaced it.
    app.post(
        "/v1/auth/refresh",
        None,
        json!({"refresh_token": s.refresh}),
    )
    .await
    .assert_problem(401, "invalid-token");
    app.post(
        "/v1/auth/refresh",
        None,
        json!({"refresh_token": new_refresh}),
    )
    .await
    .assert_problem(401, "invalid-token");

    // Logout revokes a fresh login's refresh token.
    let l = app.login("ada@example.org", "correct horse battery").await;
    let refresh = l.body["refresh_token"]
        .as_str()
        .expect("refresh")
        .to_owned();
    let out = app
        .post("/v1/auth/logout", None, json!({"refresh_token": refresh}))
        .await;
    assert_eq!(out.status, StatusCode::NO_CONTENT);
    app.post("/v1/auth/refresh", None, json!({"refresh_token": refresh}))
        .await
        .assert_problem(401, "invalid-token");
    app.post(
        "/v1/auth/refresh",
        None,
        json!({"refresh_token": "nvr_garbage"}),
    )
    .await
    .assert_problem(401, "invalid-token");
}

async fn duplicate_and_bad_registrations(db: Db) {
    let app = spawn_app(db).await;
    app.user("bob@example.org").await;
    app.register("BOB@Example.org ")
        .await
        .assert_problem(409, "email-taken");
    let bad = app
        .post(
            "/v1/auth/register",
            None,
            json!({"email": "not-an-email", "password": "short", "display_name": " "}),
        )
        .await;
    bad.assert_problem(422, "validation-failed");
    let pointers: Vec<&str> = bad.body["errors"]
        .as_array()
        .expect("errors")
        .iter()
        .filter_map(|e| e["pointer"].as_str())
        .collect();
    assert_eq!(
        pointers,
        ["/email", "/password", "/display_name"],
        "{}",
        bad.text
    );
}

async fn wrong_credentials_are_indistinguishable(db: Db) {
    let app = spawn_app(db).await;
    app.user("carol@example.org").await;
    let wrong_pw = app.login("carol@example.org", "not the password").await;
    wrong_pw.assert_problem(401, "invalid-credentials");
    let no_user = app.login("nobody@example.org", "not the password").await;
    no_user.assert_problem(401, "invalid-credentials");
    assert_eq!(wrong_pw.body["detail"], no_user.body["detail"]);
}

fn mint(claims: serde_json::Value, secret: &str) -> String {
    encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(secret.as_bytes()).expect("key"),
    )
    .expect("encode")
}

async fn forged_and_foreign_tokens_are_rejected(db: Db) {
    let app = spawn_app(db).await;
    let s = app.user("dan@example.org").await;
    let now = chrono::Utc::now().timestamp();
    let good = json!({"sub": s.user_id, "iat": now, "exp": now + 600, "iss": "nve", "aud": "nve-api", "typ": "access"});
    // A token we mint the same way the server does is accepted: the cases below differ in one thing each.
    assert_eq!(
        app.get("/v1/me", &mint(good.clone(), JWT_SECRET))
            .await
            .status,
        StatusCode::OK
    );

    let mut cases: Vec<(&str, String)> = Vec::new();
    let mut expired = good.clone();
    expired["exp"] = json!(now - 3600);
    expired["iat"] = json!(now - 7200);
    cases.push(("expired", mint(expired, JWT_SECRET)));
    let mut aud = good.clone();
    aud["aud"] = json!("someone-else");
    cases.push(("wrong aud", mint(aud, JWT_SECRET)));
    let mut iss = good.clone();
    iss["iss"] = json!("evil");
    cases.push(("wrong iss", mint(iss, JWT_SECRET)));
    cases.push((
        "other secret",
        mint(good.clone(), "another-secret-0123456789abcdef0123456789"),
    ));
    let mut no_exp = good.clone();
    no_exp.as_object_mut().expect("obj").remove("exp");
    cases.push(("no exp", mint(no_exp, JWT_SECRET)));
    let mut refresh_typ = good.clone();
    refresh_typ["typ"] = json!("refresh");
    cases.push(("wrong typ", mint(refresh_typ, JWT_SECRET)));
    let payload = B64.encode(good.to_string());
    cases.push((
        "alg none",
        format!(
            "{}.{payload}.",
            B64.encode(br#"{"alg":"none","typ":"JWT"}"#)
        ),
    ));
    let valid = mint(good.clone(), JWT_SECRET);
    let parts: Vec<&str> = valid.split('.').collect();
    let mut tampered_claims = good.clone();
    tampered_claims["sub"] = json!(uuid::Uuid::now_v7().to_string());
    cases.push((
        "tampered",
        format!(
            "{}.{}.{}",
            parts[0],
            B64.encode(tampered_claims.to_string()),
            parts[2]
        ),
    ));
    let hs512 = encode(
        &Header::new(Algorithm::HS512),
        &good,
        &EncodingKey::from_secret(JWT_SECRET.as_bytes()).expect("key"),
    )
    .expect("encode");
    cases.push(("HS512", hs512));
    cases.push(("garbage", "abc.def.ghi".to_owned()));
    for (what, token) in cases {
        let r = app.get("/v1/me", &token).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{what}: {}", r.text);
        assert_eq!(r.body["code"], "invalid-token", "{what}: {}", r.text);
        assert!(r.headers.contains_key("www-authenticate"), "{what}");
    }
    // No Authorization header at all.
    app.call(Method::GET, "/v1/me", None, None)
        .await
        .assert_problem(401, "unauthenticated");
}

async fn api_keys_work_until_revoked(db: Db) {
    let app = spawn_app(db).await;
    let a = app.user("erin@example.org").await;
    let b = app.user("frank@example.org").await;
    let created = app
        .post("/v1/api-keys", Some(&a.token), json!({"name": "ci"}))
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    let key = created.body["key"].as_str().expect("key").to_owned();
    let id = created.body["api_key"]["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let prefix = created.body["api_key"]["prefix"]
        .as_str()
        .expect("prefix")
        .to_owned();
    assert!(key.starts_with(&format!("nve_{prefix}_")));

    let me = app.get("/v1/me", &key).await;
    assert_eq!(me.status, StatusCode::OK, "{}", me.text);
    assert_eq!(me.body["email"], "erin@example.org");

    let list = app.get("/v1/api-keys", &a.token).await;
    assert_eq!(list.body.as_array().expect("list").len(), 1);
    assert!(!list.text.contains(&key), "the key must never be listed");
    assert!(
        app.get("/v1/api-keys", &b.token)
            .await
            .body
            .as_array()
            .expect("list")
            .is_empty()
    );

    // Another user's key id looks exactly like a missing one.
    let foreign = app
        .call(
            Method::DELETE,
            &format!("/v1/api-keys/{id}"),
            Some(&b.token),
            None,
        )
        .await;
    foreign.assert_problem(404, "not-found");
    assert_eq!(app.get("/v1/me", &key).await.status, StatusCode::OK);

    let revoked = app
        .call(
            Method::DELETE,
            &format!("/v1/api-keys/{id}"),
            Some(&a.token),
            None,
        )
        .await;
    assert_eq!(revoked.status, StatusCode::NO_CONTENT);
    app.get("/v1/me", &key)
        .await
        .assert_problem(401, "invalid-token");
    // A key with the right prefix but a wrong secret.
    let forged = format!("nve_{prefix}_{}", "0".repeat(64));
    app.get("/v1/me", &forged)
        .await
        .assert_problem(401, "invalid-token");
}

async fn login_is_rate_limited(db: Db) {
    let app = spawn_app_with(db, &[("NVE_AUTH__LOGIN_ATTEMPTS_PER_MINUTE", "3")]).await;
    app.user("gina@example.org").await; // one successful login
    for _ in 0..2 {
        app.login("gina@example.org", "wrong password!")
            .await
            .assert_problem(401, "invalid-credentials");
    }
    let limited = app.login("gina@example.org", "correct horse battery").await;
    limited.assert_problem(429, "rate-limited");
    let retry: u64 = limited
        .headers
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .expect("Retry-After header");
    assert!((1..=60).contains(&retry));
    // Other addresses are not affected by this one's limit.
    app.user("hank@example.org").await;
}

async fn registration_can_be_closed(db: Db) {
    let app = spawn_app_with(db, &[("NVE_AUTH__ALLOW_REGISTRATION", "false")]).await;
    app.register("ivy@example.org")
        .await
        .assert_problem(403, "registration-closed");
}
