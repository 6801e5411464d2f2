//! `GET /v1/projects/{id}/live`: the editor's WebSocket. Authenticated and checked for
//! membership before the upgrade (a stranger gets 404 and no socket). Then:
//!
//! ```text
//! client → {"type":"hello","last_version":N}           resume after N (omit for a snapshot)
//!          {"type":"edit","base_version","client_op_id","ops":[…]}
//!          {"type":"presence","playhead":12.5,"selection":["c1"]}
//!          {"type":"ping"}
//! server → {"type":"welcome","session_id","user_id","role","version"}
//!          {"type":"snapshot","version","document"}  or the missed {"type":"op",…} in order
//!          {"type":"op","version","base_version","author_id","client_op_id","kind","ops":[…]}
//!          {"type":"ack","client_op_id","version","duplicate"} / {"type":"error","client_op_id","problem"}
//!          {"type":"presence_list","sessions":[…]}, {"type":"presence",…}, {"type":"pong"}
//!          {"type":"job","job_id","kind","status","progress","detail"}
//! ```
//!
//! Ops reach every session in version order exactly once: a session remembers the last
//! version it sent and fills any gap (a lagging channel, events from several replicas
//! arriving out of order) from the op log.

use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use poem::web::websocket::{CloseCode, Message, WebSocket, WebSocketStream};
use poem::web::{Data, Query};
use poem::{Endpoint, IntoResponse, Request, handler};
use serde::Deserialize;
use serde_json::json;
use tokio::sync::broadcast::error::RecvError;
use uuid::Uuid;

use crate::auth::Principal;
use crate::collab::hub::ProjectEvent;
use crate::collab::service::{self, Change};
use crate::error::{ApiError, ErrorKind};
use crate::routes::projects::{Role, membership};
use crate::state::AppState;

/// A client further behind than this gets a snapshot instead of every op.
const MAX_REPLAY: i64 = 500;
/// How often a session re-checks that its user is still a member.
const MEMBERSHIP_CHECK: Duration = Duration::from_secs(2);
/// Close code for "your access to this project ended".
const CLOSE_REVOKED: u16 = 4403;

#[derive(Debug, Deserialize)]
pub struct LiveQuery {
    /// Browsers cannot set headers on a WebSocket; the token may come as a query parameter.
    access_token: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum ClientMsg {
    Hello {
        last_version: Option<i64>,
    },
    Edit {
        base_version: i64,
        client_op_id: String,
        ops: Vec<serde_json::Value>,
    },
    Presence {
        playhead: Option<f64>,
        #[serde(default)]
        selection: Vec<String>,
    },
    Ping,
}

/// The project id of a `/…/projects/{id}/live` path.
pub fn live_project(path: &str) -> Option<&str> {
    let rest = path.strip_suffix("/live")?;
    let (head, id) = rest.rsplit_once('/')?;
    head.ends_with("/projects").then_some(id)
}

/// Sends `/v1/projects/{id}/live` to the WebSocket handler and everything else to the
/// OpenAPI service. (poem's router does not fall back from a more specific route to a nested
/// service, so the two cannot simply be mounted side by side.)
pub struct V1<A, L> {
    pub api: A,
    pub live: L,
}

impl<A: Endpoint, L: Endpoint> Endpoint for V1<A, L> {
    type Output = poem::Response;

    async fn call(&self, req: Request) -> poem::Result<Self::Output> {
        if live_project(req.uri().path()).is_some() {
            self.live.call(req).await.map(IntoResponse::into_response)
        } else {
            self.api.call(req).await.map(IntoResponse::into_response)
        }
    }
}

#[handler]
pub async fn live(
    req: &Request,
    ws: WebSocket,
    Query(q): Query<LiveQuery>,
    state: Data<&AppState>,
) -> poem::Result<poem::Response> {
    let project = live_project(req.uri().path())
        .and_then(|id| Uuid::parse_str(id).ok())
        .ok_or_else(|| {
            ApiError::new(
                ErrorKind::InvalidParameter,
                "the project id in the path is not a UUID",
            )
        })?;
    let token = q
        .access_token
        .or_else(|| {
            req.headers()
                .get("authorization")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Bearer ").map(str::to_owned))
        })
        .ok_or_else(|| {
            ApiError::new(
                ErrorKind::Unauthenticated,
                "pass ?access_token= or Authorization: Bearer",
            )
        })?;
    let principal = crate::auth::principal_for(&state, &token).await?;
    let (_, role) = membership(&state.db, project, principal.user_id).await?;
    let state = state.clone();
    Ok(ws
        .on_upgrade(move |socket| async move {
            let session = Session {
                state,
                project,
                principal,
                id: Uuid::now_v7(),
                last_sent: 0,
            };
            session.run(socket, role).await;
        })
        .into_response())
}

struct Session {
    state: AppState,
    project: Uuid,
    principal: Principal,
    id: Uuid,
    last_sent: i64,
}

type Sink = futures_util::stream::SplitSink<WebSocketStream, Message>;

async fn send(sink: &mut Sink, value: serde_json::Value) -> bool {
    sink.send(Message::Text(value.to_string())).await.is_ok()
}

impl Session {
    async fn run(mut self, socket: WebSocketStream, role: Role) {
        let (mut sink, mut stream) = socket.split();
        // Subscribe before reading the version so nothing committed in between is missed.
        let mut events = self.state.collab.hub.subscribe(self.project);
        let version = match self
            .state
            .collab
            .current_cached(&self.state.db, self.project)
            .await
        {
            Ok((v, _)) => v,
            Err(e) => {
                let _ = send(
                    &mut sink,
                    json!({"type": "error", "problem": e.problem_json()}),
                )
                .await;
                return;
            }
        };
        let welcome = json!({
            "type": "welcome",
            "session_id": self.id,
            "user_id": self.principal.user_id,
            "role": role.as_str(),
            "version": version,
        });
        if !send(&mut sink, welcome).await {
            return;
        }
        let mut greeted = false;
        let mut check = tokio::time::interval(MEMBERSHIP_CHECK);
        check.tick().await;
        loop {
            tokio::select! {
                incoming = stream.next() => {
                    let Some(Ok(msg)) = incoming else { break };
                    let text = match msg {
                        Message::Text(t) => t,
                        Message::Close(_) => break,
                        _ => continue,
                    };
                    let parsed: Result<ClientMsg, _> = serde_json::from_str(&text);
                    let ok = match parsed {
                        Ok(ClientMsg::Hello { last_version }) if !greeted => {
                            greeted = true;
                            self.catch_up(&mut sink, last_version).await
                        }
                        Ok(ClientMsg::Hello { .. }) => true,
                        Ok(other) if !greeted => {
                            // A client that skips hello gets a snapshot first, then its message.
                            greeted = true;
                            self.catch_up(&mut sink, None).await && self.handle(&mut sink, other).await
                        }
                        Ok(other) => self.handle(&mut sink, other).await,
                        Err(e) => {
                            let problem = ApiError::new(ErrorKind::MalformedJson, format!("unreadable message: {e}"));
                            send(&mut sink, json!({"type": "error", "problem": problem.problem_json()})).await
                        }
                    };
                    if !ok { break; }
                }
                event = events.recv(), if greeted => {
                    let ok = match event {
                        Ok(ev) => self.forward(&mut sink, &ev).await,
                        // Fell behind the channel: the log has everything.
                        Err(RecvError::Lagged(_)) => self.fill_to_current(&mut sink).await,
                        Err(RecvError::Closed) => false,
                    };
                    if !ok { break; }
                }
                _ = check.tick() => {
                    if membership(&self.state.db, self.project, self.principal.user_id).await.is_err() {
                        let _ = sink
                            .send(Message::Close(Some((CloseCode::from(CLOSE_REVOKED), "no longer a member of this project".into()))))
                            .await;
                        break;
                    }
                }
            }
        }
        self.leave().await;
    }

    async fn leave(&self) {
        let event = ProjectEvent::Presence {
            session_id: self.id,
            user_id: self.principal.user_id,
            display_name: self.principal.email.clone(),
            playhead: None,
            selection: Vec::new(),
            left: true,
        };
        self.state.collab.hub.publish(self.project, event).await;
    }

    /// Brings a (re)connecting client to the current version, then lists who is here.
    async fn catch_up(&mut self, sink: &mut Sink, last_version: Option<i64>) -> bool {
        let current = match self
            .state
            .collab
            .current_cached(&self.state.db, self.project)
            .await
        {
            Ok(c) => c,
            Err(_) => return false,
        };
        let replay_from =
            last_version.filter(|v| *v >= 0 && *v <= current.0 && current.0 - v <= MAX_REPLAY);
        match replay_from {
            Some(v) => {
                self.last_sent = v;
                if !self.fill_to(sink, current.0).await {
                    return false;
                }
            }
            None => {
                let document = match serde_json::to_value(current.1.to_doc()) {
                    Ok(d) => d,
                    Err(_) => return false,
                };
                self.last_sent = current.0;
                if !send(
                    sink,
                    json!({"type": "snapshot", "version": current.0, "document": document}),
                )
                .await
                {
                    return false;
                }
            }
        }
        let present = self.state.collab.hub.present(self.project);
        send(sink, json!({"type": "presence_list", "sessions": present})).await
    }

    async fn forward(&mut self, sink: &mut Sink, event: &Arc<ProjectEvent>) -> bool {
        match event.as_ref() {
            ProjectEvent::Op { version, .. } => {
                let version = *version;
                if version <= self.last_sent {
                    return true;
                }
                if version > self.last_sent + 1 && !self.fill_to(sink, version - 1).await {
                    return false;
                }
                let Ok(value) = serde_json::to_value(event.as_ref()) else {
                    return false;
                };
                self.last_sent = version;
                send(sink, value).await
            }
            ProjectEvent::Job { .. } => match serde_json::to_value(event.as_ref()) {
                Ok(value) => send(sink, value).await,
                Err(_) => false,
            },
            ProjectEvent::Presence { session_id, .. } => {
                if *session_id == self.id {
                    return true;
                }
                match serde_json::to_value(event.as_ref()) {
                    Ok(value) => send(sink, value).await,
                    Err(_) => false,
                }
            }
        }
    }

    async fn fill_to_current(&mut self, sink: &mut Sink) -> bool {
        match self
            .state
            .collab
            .current_cached(&self.state.db, self.project)
            .await
        {
            Ok((v, _)) => self.fill_to(sink, v).await,
            Err(_) => false,
        }
    }

    /// Sends the logged versions after `last_sent` up to `upto`, in order.
    async fn fill_to(&mut self, sink: &mut Sink, upto: i64) -> bool {
        while self.last_sent < upto {
            let events =
                match service::events_after(&self.state.db, self.project, self.last_sent, upto)
                    .await
                {
                    Ok(e) if !e.is_empty() => e,
                    _ => return false,
                };
            for (version, event) in events {
                let Ok(value) = serde_json::to_value(&event) else {
                    return false;
                };
                if !send(sink, value).await {
                    return false;
                }
                self.last_sent = version;
            }
        }
        true
    }

    async fn handle(&mut self, sink: &mut Sink, msg: ClientMsg) -> bool {
        match msg {
            ClientMsg::Hello { .. } => true,
            ClientMsg::Ping => send(sink, json!({"type": "pong"})).await,
            ClientMsg::Presence {
                playhead,
                selection,
            } => {
                let playhead = playhead.filter(|p| p.is_finite());
                let selection: Vec<String> = selection
                    .into_iter()
                    .take(100)
                    .map(|s| s.chars().take(128).collect())
                    .collect();
                let event = ProjectEvent::Presence {
                    session_id: self.id,
                    user_id: self.principal.user_id,
                    display_name: self.principal.email.clone(),
                    playhead,
                    selection,
                    left: false,
                };
                self.state.collab.hub.publish(self.project, event).await;
                true
            }
            ClientMsg::Edit {
                base_version,
                client_op_id,
                ops,
            } => {
                // The role is read again for every write: a demotion takes effect at once.
                let allowed = crate::routes::projects::require_role(
                    &self.state.db,
                    self.project,
                    self.principal.user_id,
                    Role::Editor,
                )
                .await;
                let result = match allowed {
                    Ok(_) => {
                        self.state
                            .collab
                            .commit(
                                self.project,
                                self.principal.user_id,
                                &client_op_id,
                                Change::Ops { base_version, ops },
                            )
                            .await
                    }
                    Err(e) => Err(e),
                };
                let reply = match result {
                    Ok(c) => {
                        json!({"type": "ack", "client_op_id": c.client_op_id, "version": c.version, "duplicate": c.duplicate})
                    }
                    Err(e) => {
                        json!({"type": "error", "client_op_id": client_op_id, "problem": e.problem_json()})
                    }
                };
                send(sink, reply).await
            }
        }
    }
}
