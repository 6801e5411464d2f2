//! What timeline validation knows about assets: their kind, duration, streams and display
//! size, read from the probe for exactly the asset ids a change involves.
//!
//! Which assets resolve depends on the caller. A new reference must name a `ready` asset of
//! the project. A reference the document already holds keeps resolving after the asset is
//! deleted (its row stays, without media), so a delete racing an edit can never leave a
//! timeline that no longer validates; and replaying history resolves every asset it ever
//! used, so old versions stay readable.

use std::collections::{HashMap, HashSet};

use nve_pipelines::timeline::{AssetInfo, Timeline};
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QuerySelect};
use uuid::Uuid;

use nve_entity::assets;

use crate::error::ApiError;

pub type Facts = HashMap<String, AssetInfo>;

/// Asset ids a decoded document references.
pub fn in_timeline(tl: &Timeline) -> HashSet<String> {
    tl.tracks
        .iter()
        .flat_map(|t| t.clips.iter())
        .filter_map(|c| c.source.asset_id())
        .map(str::to_owned)
        .collect()
}

/// Asset ids anywhere in a wire document or op list (every `asset_id` string).
pub fn in_json(value: &serde_json::Value, out: &mut HashSet<String>) {
    match value {
        serde_json::Value::Object(map) => {
            for (k, v) in map {
                match v {
                    serde_json::Value::String(s) if k == "asset_id" => {
                        out.insert(s.clone());
                    }
                    other => in_json(other, out),
                }
            }
        }
        serde_json::Value::Array(items) => items.iter().for_each(|v| in_json(v, out)),
        _ => {}
    }
}

/// The validation facts of a probed asset.
pub fn info(kind: Option<&str>, probe: Option<&serde_json::Value>) -> Option<AssetInfo> {
    let probe = probe?;
    let is_image = kind == Some("image");
    let video = probe
        .get("video")
        .and_then(|v| v.as_array())
        .and_then(|v| v.first());
    let dim = |key: &str| {
        video
            .and_then(|v| v.get(key))
            .and_then(serde_json::Value::as_u64)
            .and_then(|n| u32::try_from(n).ok())
            .unwrap_or(0)
    };
    let rotation = video
        .and_then(|v| v.get("rotation"))
        .and_then(serde_json::Value::as_u64)
        .unwrap_or(0);
    // Display size: a clip shot in portrait and stored rotated is as tall as it looks.
    let (width, height) = if rotation % 180 == 90 {
        (dim("height"), dim("width"))
    } else {
        (dim("width"), dim("height"))
    };
    let duration = probe
        .get("duration")
        .and_then(serde_json::Value::as_f64)
        .unwrap_or(0.0);
    let has_audio = probe
        .get("audio")
        .and_then(|a| a.as_array())
        .is_some_and(|a| !a.is_empty());
    Some(AssetInfo {
        duration_ns: (duration * 1e9).round() as i64,
        has_video: video.is_some() && !is_image,
        has_audio: has_audio && !is_image,
        is_image,
        width,
        height,
    })
}

/// Facts of the assets among `wanted` that belong to `project`. `ready` assets always
/// resolve; deleted ones only when listed in `keep_deleted`.
pub async fn load<C: ConnectionTrait>(
    db: &C,
    project: Uuid,
    wanted: &HashSet<String>,
    keep_deleted: &HashSet<String>,
) -> Result<Facts, ApiError> {
    let ids: Vec<Uuid> = wanted
        .iter()
        .filter_map(|s| Uuid::parse_str(s).ok())
        .collect();
    if ids.is_empty() {
        return Ok(Facts::new());
    }
    let mut facts = Facts::new();
    // Bounded IN lists: a document may reference thousands of assets.
    for chunk in ids.chunks(500) {
        let rows: Vec<(Uuid, String, Option<String>, Option<serde_json::Value>)> =
            assets::Entity::find()
                .select_only()
                .column(assets::Column::Id)
                .column(assets::Column::Status)
                .column(assets::Column::Kind)
                .column(assets::Column::Probe)
                .filter(assets::Column::ProjectId.eq(project))
                .filter(assets::Column::Id.is_in(chunk.iter().copied()))
                .into_tuple()
                .all(db)
                .await?;
        for (id, status, kind, probe) in rows {
            let key = id.to_string();
            let usable = status == "ready" || (status == "deleted" && keep_deleted.contains(&key));
            if usable && let Some(i) = info(kind.as_deref(), probe.as_ref()) {
                facts.insert(key, i);
            }
        }
    }
    Ok(facts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotated_clips_report_their_display_size() {
        let probe = serde_json::json!({
            "duration": 2.5,
            "video": [{"width": 1920, "height": 1080, "rotation": 90}],
            "audio": [{"channels": 2}],
        });
        let i = info(Some("video"), Some(&probe)).expect("info");
        assert_eq!((i.width, i.height), (1080, 1920));
        assert_eq!(i.duration_ns, 2_500_000_000);
        assert!(i.has_video && i.has_audio && !i.is_image);
        let image = serde_json::json!({"video": [{"width": 400, "height": 200}], "audio": []});
        let i = info(Some("image"), Some(&image)).expect("image");
        assert!(i.is_image && !i.has_video && !i.has_audio);
        assert!(info(Some("video"), None).is_none());
    }

    #[test]
    fn ids_are_found_anywhere_in_json() {
        let mut ids = HashSet::new();
        in_json(
            &serde_json::json!([{"op": "add_clip", "clip": {"source": {"type": "asset", "asset_id": "a"}}},
                                {"nested": [{"asset_id": "b"}], "asset_id": 3}]),
            &mut ids,
        );
        assert_eq!(ids, HashSet::from(["a".to_owned(), "b".to_owned()]));
    }
}
