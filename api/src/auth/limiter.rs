//! Fixed-window rate limiting in process memory. Enough for the embedded mode and for the
//! per-replica protection of login; a cluster-wide limit would move the counters to Redis.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

const WINDOW: Duration = Duration::from_secs(60);
/// Beyond this many tracked keys, expired windows are dropped on the next insert.
const PRUNE_ABOVE: usize = 10_000;

#[derive(Default)]
pub struct RateLimiter {
    windows: Mutex<HashMap<String, (Instant, u32)>>,
}

impl RateLimiter {
    /// Counts one attempt for `key`. `Err(seconds)` says how long until the window resets.
    pub fn hit(&self, key: &str, per_minute: u32) -> Result<(), u64> {
        let now = Instant::now();
        let mut map = match self.windows.lock() {
            Ok(m) => m,
            // A panic while holding the lock cannot leave the map inconsistent; keep using it.
            Err(poisoned) => poisoned.into_inner(),
        };
        if map.len() > PRUNE_ABOVE {
            map.retain(|_, (start, _)| now.duration_since(*start) < WINDOW);
        }
        let entry = map.entry(key.to_owned()).or_insert((now, 0));
        if now.duration_since(entry.0) >= WINDOW {
            *entry = (now, 0);
        }
        if entry.1 >= per_minute {
            let left = WINDOW.saturating_sub(now.duration_since(entry.0));
            return Err(left.as_secs().max(1));
        }
        entry.1 += 1;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_per_key() {
        let l = RateLimiter::default();
        assert!(l.hit("a", 2).is_ok());
        assert!(l.hit("a", 2).is_ok());
        let wait = l.hit("a", 2).expect_err("limited");
        assert!((1..=60).contains(&wait));
        assert!(l.hit("b", 2).is_ok());
    }
}
