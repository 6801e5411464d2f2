use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::both_dbs;
use crate::helpers::{Db, spawn_app};

both_dbs!(
    project_crud_and_pagination,
    strangers_get_404_everywhere,
    roles_limit_what_members_do,
    mass_assignment_is_rejected,
    a_project_keeps_an_owner,
);

async fn project_crud_and_pagination(db: Db) {
    let app = spawn_app(db).await;
    let a = app.user("a@example.org").await;
    let created = app
        .post(
            "/v1/projects",
            Some(&a.token),
            json!({"name": "  Launch video ", "description": "Q4"}),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    assert_eq!(created.body["name"], "Launch video");
    assert_eq!(created.body["role"], "owner");
    assert_eq!(created.body["owner_id"], a.user_id.as_str());
    let id = created.body["id"].as_str().expect("id").to_owned();

    let got = app.get(&format!("/v1/projects/{id}"), &a.token).await;
    assert_eq!(got.status, StatusCode::OK);
    assert_eq!(got.body["description"], "Q4");

    let patched = app
        .call(
            Method::PATCH,
            &format!("/v1/projects/{id}"),
            Some(&a.token),
            Some(json!({"name": "Launch"})),
        )
        .await;
    assert_eq!(patched.status, StatusCode::OK, "{}", patched.text);
    assert_eq!(patched.body["name"], "Launch");
    assert_eq!(patched.body["description"], "Q4");

    for i in 0..4 {
        app.project(&a, &format!("p{i}")).await;
    }
    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let path = match &after {
            Some(c) => format!("/v1/projects?limit=2&after={c}"),
            None => "/v1/projects?limit=2".to_owned(),
        };
        let page = app.get(&path, &a.token).await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.text);
        let items = page.body["items"].as_array().expect("items");
        assert!(items.len() <= 2);
        seen.extend(
            items
                .iter()
                .map(|p| p["name"].as_str().unwrap_or_default().to_owned()),
        );
        match page.body["next_after"].as_str() {
            Some(c) => after = Some(c.to_owned()),
            None => break,
        }
    }
    assert_eq!(
        seen,
        ["p3", "p2", "p1", "p0", "Launch"],
        "newest first, each once"
    );

    let deleted = app
        .call(
            Method::DELETE,
            &format!("/v1/projects/{id}"),
            Some(&a.token),
            None,
        )
        .await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    app.get(&format!("/v1/projects/{id}"), &a.token)
        .await
        .assert_problem(404, "not-found");
}

async fn strangers_get_404_everywhere(db: Db) {
    let app = spawn_app(db).await;
    let a = app.user("owner@example.org").await;
    let b = app.user("stranger@example.org").await;
    let id = app.project(&a, "secret").await;
    let missing = uuid::Uuid::now_v7().to_string();
    let calls = |pid: &str| {
        vec![
            (Method::GET, format!("/v1/projects/{pid}"), None),
            (
                Method::PATCH,
                format!("/v1/projects/{pid}"),
                Some(json!({"name": "x"})),
            ),
            (Method::DELETE, format!("/v1/projects/{pid}"), None),
            (Method::GET, format!("/v1/projects/{pid}/members"), None),
            (
                Method::POST,
                format!("/v1/projects/{pid}/members"),
                Some(json!({"email": "stranger@example.org", "role": "owner"})),
            ),
            (
                Method::PATCH,
                format!("/v1/projects/{pid}/members/{}", a.user_id),
                Some(json!({"role": "viewer"})),
            ),
            (
                Method::DELETE,
                format!("/v1/projects/{pid}/members/{}", a.user_id),
                None,
            ),
        ]
    };
    for (method, path, body) in calls(&id) {
        let foreign = app
            .call(method.clone(), &path, Some(&b.token), body.clone())
            .await;
        foreign.assert_problem(404, "not-found");
        let path_missing = path.replace(&id, &missing);
        let absent = app
            .call(method.clone(), &path_missing, Some(&b.token), body)
            .await;
        absent.assert_problem(404, "not-found");
        assert_eq!(
            foreign.body["detail"], absent.body["detail"],
            "{method} {path}"
        );
    }
    assert!(
        app.get("/v1/projects", &b.token).await.body["items"]
            .as_array()
            .expect("items")
            .is_empty()
    );
    // Nothing changed for the owner.
    let still = app.get(&format!("/v1/projects/{id}"), &a.token).await;
    assert_eq!(still.body["name"], "secret");
    let members = app
        .get(&format!("/v1/projects/{id}/members"), &a.token)
        .await;
    assert_eq!(members.body.as_array().expect("members").len(), 1);
}

async fn roles_limit_what_members_do(db: Db) {
    let app = spawn_app(db).await;
    let owner = app.user("o@example.org").await;
    let editor = app.user("e@example.org").await;
    let viewer = app.user("v@example.org").await;
    let extra = app.user("x@example.org").await;
    let id = app.project(&owner, "shared").await;
    for (email, role) in [("e@example.org", "editor"), ("v@example.org", "viewer")] {
        let r = app
            .post(
                &format!("/v1/projects/{id}/members"),
                Some(&owner.token),
                json!({"email": email, "role": role}),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    }
    let p = format!("/v1/projects/{id}");
    let members = format!("/v1/projects/{id}/members");

    // Viewer: reads, cannot write anything.
    assert_eq!(app.get(&p, &viewer.token).await.body["role"], "viewer");
    assert_eq!(
        app.get(&members, &viewer.token).await.status,
        StatusCode::OK
    );
    app.call(
        Method::PATCH,
        &p,
        Some(&viewer.token),
        Some(json!({"name": "v"})),
    )
    .await
    .assert_problem(403, "forbidden");
    app.call(Method::DELETE, &p, Some(&viewer.token), None)
        .await
        .assert_problem(403, "forbidden");
    app.post(
        &members,
        Some(&viewer.token),
        json!({"email": "x@example.org", "role": "viewer"}),
    )
    .await
    .assert_problem(403, "forbidden");

    // Editor: edits the project, does not manage members or delete.
    let edited = app
        .call(
            Method::PATCH,
            &p,
            Some(&editor.token),
            Some(json!({"name": "by editor"})),
        )
        .await;
    assert_eq!(edited.status, StatusCode::OK, "{}", edited.text);
    app.call(Method::DELETE, &p, Some(&editor.token), None)
        .await
        .assert_problem(403, "forbidden");
    app.post(
        &members,
        Some(&editor.token),
        json!({"email": "x@example.org", "role": "owner"}),
    )
    .await
    .assert_problem(403, "forbidden");
    app.call(
        Method::PATCH,
        &format!("{members}/{}", viewer.user_id),
        Some(&editor.token),
        Some(json!({"role": "owner"})),
    )
    .await
    .assert_problem(403, "forbidden");

    // Owner promotes the viewer; adding an unknown user or a member twice is refused clearly.
    let promoted = app
        .call(
            Method::PATCH,
            &format!("{members}/{}", viewer.user_id),
            Some(&owner.token),
            Some(json!({"role": "editor"})),
        )
        .await;
    assert_eq!(promoted.status, StatusCode::OK, "{}", promoted.text);
    assert_eq!(promoted.body["role"], "editor");
    let unknown = app
        .post(
            &members,
            Some(&owner.token),
            json!({"email": "ghost@example.org", "role": "viewer"}),
        )
        .await;
    unknown.assert_problem(422, "validation-failed");
    assert_eq!(unknown.body["errors"][0]["code"], "unknown-user");
    app.post(
        &members,
        Some(&owner.token),
        json!({"email": "e@example.org", "role": "viewer"}),
    )
    .await
    .assert_problem(409, "conflict");
    let bad_role = app
        .post(
            &members,
            Some(&owner.token),
            json!({"email": "x@example.org", "role": "admin"}),
        )
        .await;
    bad_role.assert_problem(422, "validation-failed");
    assert_eq!(bad_role.body["errors"][0]["pointer"], "/role");

    // A member can leave; then the project is gone for them.
    let left = app
        .call(
            Method::DELETE,
            &format!("{members}/{}", editor.user_id),
            Some(&editor.token),
            None,
        )
        .await;
    assert_eq!(left.status, StatusCode::NO_CONTENT);
    app.get(&p, &editor.token)
        .await
        .assert_problem(404, "not-found");
    app.get(&p, &extra.token)
        .await
        .assert_problem(404, "not-found");
}

async fn mass_assignment_is_rejected(db: Db) {
    let app = spawn_app(db).await;
    let a = app.user("m@example.org").await;
    let b = app.user("n@example.org").await;
    let r = app
        .post(
            "/v1/projects",
            Some(&a.token),
            json!({"name": "x", "owner_id": b.user_id, "id": uuid::Uuid::now_v7()}),
        )
        .await;
    r.assert_problem(422, "validation-failed");
    assert_eq!(r.body["errors"][0]["code"], "unknown-field");
    let id = app.project(&a, "mine").await;
    let p = app
        .call(
            Method::PATCH,
            &format!("/v1/projects/{id}"),
            Some(&a.token),
            Some(json!({"owner_id": b.user_id})),
        )
        .await;
    p.assert_problem(422, "validation-failed");
    let still = app.get(&format!("/v1/projects/{id}"), &a.token).await;
    assert_eq!(still.body["owner_id"], a.user_id.as_str());
    app.get(&format!("/v1/projects/{id}"), &b.token)
        .await
        .assert_problem(404, "not-found");
}

async fn a_project_keeps_an_owner(db: Db) {
    let app = spawn_app(db).await;
    let a = app.user("solo@example.org").await;
    let b = app.user("next@example.org").await;
    let id = app.project(&a, "p").await;
    let me = format!("/v1/projects/{id}/members/{}", a.user_id);
    app.call(Method::DELETE, &me, Some(&a.token), None)
        .await
        .assert_problem(409, "last-owner");
    app.call(
        Method::PATCH,
        &me,
        Some(&a.token),
        Some(json!({"role": "editor"})),
    )
    .await
    .assert_problem(409, "last-owner");
    let added = app
        .post(
            &format!("/v1/projects/{id}/members"),
            Some(&a.token),
            json!({"email": "next@example.org", "role": "owner"}),
        )
        .await;
    assert_eq!(added.status, StatusCode::CREATED);
    let left = app.call(Method::DELETE, &me, Some(&a.token), None).await;
    assert_eq!(left.status, StatusCode::NO_CONTENT, "{}", left.text);
    assert_eq!(
        app.get(&format!("/v1/projects/{id}"), &b.token).await.body["role"],
        "owner"
    );
}
