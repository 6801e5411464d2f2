//! Integration tests: the real server on a free port against a fresh SQLite file or a fresh
//! PostgreSQL database per test, driven over HTTP.

mod helpers;

mod assets;
mod auth;
mod bad_input;
mod cli;
mod distributed;
mod imports;
mod jobs;
mod live;
mod media_s3;
mod ops;
mod projects;
mod queue;
mod renders;
mod standalone_renders;
mod timeline;
mod uploads;
