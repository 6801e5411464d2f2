//! Time on the output frame grid.
//!
//! Every time in the domain model is a whole number of output frames ([`Frames`]). Seconds only
//! exist at the edges (the wire document and wire ops), and are snapped once, on the way in, so
//! no floating-point error can accumulate across edits.
//!
//! Rounding rule, used everywhere a time is snapped or rescaled: **round half away from zero**
//! (the rule of `f64::round`). It is symmetric (`round(-x) == -round(x)`), which keeps "shift by
//! +d then by -d" exact, and it matches what callers expect of seconds typed by hand.

use std::fmt;
use std::ops::{Add, Neg, Sub};

use serde::{Deserialize, Serialize};

const NS_PER_S: i128 = 1_000_000_000;

/// Largest magnitude a snapped time may have. 2^50 frames is far beyond any real timeline (and
/// beyond any `TimelineLimits::max_duration`), but small enough that frames → seconds → frames is
/// exact in `f64` and that frame arithmetic cannot overflow `i64`.
pub const MAX_FRAMES: i64 = 1 << 50;

/// A time or duration as a whole number of output frames.
///
/// Arithmetic saturates instead of overflowing: frame counts can come straight from a caller's
/// JSON, and validation (not a panic) must be what rejects absurd values.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Default,
    Serialize,
    Deserialize,
    schemars::JsonSchema,
)]
#[serde(transparent)]
pub struct Frames(pub i64);

impl Frames {
    pub const ZERO: Frames = Frames(0);

    pub const fn get(self) -> i64 {
        self.0
    }
}

impl fmt::Display for Frames {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}f", self.0)
    }
}

impl Add for Frames {
    type Output = Frames;
    fn add(self, rhs: Frames) -> Frames {
        Frames(self.0.saturating_add(rhs.0))
    }
}

impl Sub for Frames {
    type Output = Frames;
    fn sub(self, rhs: Frames) -> Frames {
        Frames(self.0.saturating_sub(rhs.0))
    }
}

impl Neg for Frames {
    type Output = Frames;
    fn neg(self) -> Frames {
        Frames(self.0.saturating_neg())
    }
}

/// `n / d` rounded half away from zero. `d` must be positive.
pub(crate) fn div_round(n: i128, d: i128) -> i128 {
    let q = n / d;
    let r = n % d;
    if 2 * r.abs() >= d { q + n.signum() } else { q }
}

/// `n / d` rounded toward negative infinity. `d` must be positive.
pub(crate) fn div_floor(n: i128, d: i128) -> i128 {
    let q = n / d;
    if n % d != 0 && n < 0 { q - 1 } else { q }
}

pub(crate) fn clamp_i64(v: i128) -> i64 {
    v.clamp(i64::MIN as i128, i64::MAX as i128) as i64
}

/// Why a frame rate or speed was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TimeError {
    #[error(
        "frame rate {num}/{den} is outside 1..=240 fps (numerator and denominator 1..=1000000)"
    )]
    Rate { num: u64, den: u64 },
    #[error("speed {0} is outside 0.1..=10.0")]
    Speed(String),
}

/// An exact output frame rate, `num / den` frames per second (e.g. 30000/1001 for NTSC 29.97).
///
/// Always stored in lowest terms, so equal rates compare equal (60/2 becomes 30/1). The valid
/// range is 1..=240 fps: below 1 fps the grid is too coarse to edit on, above 240 no encoder we
/// target accepts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(try_from = "RawRate", deny_unknown_fields)]
pub struct Rate {
    num: u32,
    den: u32,
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct RawRate {
    num: u64,
    den: u64,
}

impl TryFrom<RawRate> for Rate {
    type Error = TimeError;
    fn try_from(r: RawRate) -> Result<Self, TimeError> {
        Rate::new(r.num, r.den)
    }
}

fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

impl Rate {
    pub const FPS_24: Rate = Rate { num: 24, den: 1 };
    pub const FPS_25: Rate = Rate { num: 25, den: 1 };
    pub const FPS_30: Rate = Rate { num: 30, den: 1 };
    pub const FPS_50: Rate = Rate { num: 50, den: 1 };
    pub const FPS_60: Rate = Rate { num: 60, den: 1 };
    pub const NTSC_23_976: Rate = Rate {
        num: 24000,
        den: 1001,
    };
    pub const NTSC_29_97: Rate = Rate {
        num: 30000,
        den: 1001,
    };
    pub const NTSC_59_94: Rate = Rate {
        num: 60000,
        den: 1001,
    };

    pub fn new(num: u64, den: u64) -> Result<Rate, TimeError> {
        let err = TimeError::Rate { num, den };
        if num == 0 || den == 0 {
            return Err(err);
        }
        let g = gcd(num, den);
        let (n, d) = (num / g, den / g);
        if n > 1_000_000 || d > 1_000_000 || n < d || n > 240 * d {
            return Err(err);
        }
        Ok(Rate {
            num: n as u32,
            den: d as u32,
        })
    }

    pub fn num(self) -> u32 {
        self.num
    }

    pub fn den(self) -> u32 {
        self.den
    }

    pub fn fps(self) -> f64 {
        f64::from(self.num) / f64::from(self.den)
    }

    /// Start of frame `f` in nanoseconds, rounded half away from zero.
    pub fn frames_to_ns(self, f: Frames) -> i64 {
        clamp_i64(div_round(
            i128::from(f.0) * i128::from(self.den) * NS_PER_S,
            i128::from(self.num),
        ))
    }

    /// The frame nearest to `ns` (half away from zero).
    pub fn ns_to_frames(self, ns: i64) -> Frames {
        Frames(clamp_i64(div_round(
            i128::from(ns) * i128::from(self.num),
            i128::from(self.den) * NS_PER_S,
        )))
    }

    /// Start of frame `f` in seconds. The numerator `f * den` is exact in `f64` for every
    /// `|f| <= MAX_FRAMES`, so this is a single correctly rounded division, which is what makes
    /// [`Rate::snap_seconds`] of the result give `f` back.
    pub fn frames_to_seconds(self, f: Frames) -> f64 {
        (i128::from(f.0) * i128::from(self.den)) as f64 / f64::from(self.num)
    }

    /// The frame nearest to `s` seconds, or `None` for a non-finite value or one beyond
    /// [`MAX_FRAMES`]. Use this where a bad value must be reported rather than clamped.
    pub fn try_snap_seconds(self, s: f64) -> Option<Frames> {
        if !s.is_finite() {
            return None;
        }
        let v = (s * f64::from(self.num) / f64::from(self.den)).round();
        if v.abs() > MAX_FRAMES as f64 {
            return None;
        }
        Some(Frames(v as i64))
    }

    /// The frame nearest to `s` seconds (half away from zero). Idempotent:
    /// `snap(frames_to_seconds(snap(s))) == snap(s)`. Non-finite input saturates (NaN → 0,
    /// ±∞ → ±[`MAX_FRAMES`]); use [`Rate::try_snap_seconds`] to detect it instead.
    pub fn snap_seconds(self, s: f64) -> Frames {
        match self.try_snap_seconds(s) {
            Some(f) => f,
            None if s.is_nan() => Frames::ZERO,
            None if s > 0.0 => Frames(MAX_FRAMES),
            None => Frames(-MAX_FRAMES),
        }
    }

    /// `f` frames of this rate expressed on the grid of `to` (half away from zero).
    pub fn rescale(self, f: Frames, to: Rate) -> Frames {
        Frames(clamp_i64(div_round(
            i128::from(f.0) * i128::from(self.den) * i128::from(to.num),
            i128::from(self.num) * i128::from(to.den),
        )))
    }
}

impl Default for Rate {
    fn default() -> Self {
        Rate::FPS_30
    }
}

impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.den == 1 {
            write!(f, "{}", self.num)
        } else {
            write!(f, "{}/{}", self.num, self.den)
        }
    }
}

/// Constant playback speed, stored in thousandths so that all source-time arithmetic is integer.
/// Range 0.1..=10.0; speeds given with more precision are rounded to the nearest 0.001.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(try_from = "f64", into = "f64")]
pub struct Speed(u32);

impl Speed {
    pub const NORMAL: Speed = Speed(1000);

    pub fn from_millis(m: u32) -> Result<Speed, TimeError> {
        if (100..=10_000).contains(&m) {
            Ok(Speed(m))
        } else {
            Err(TimeError::Speed(format!("{}", f64::from(m) / 1000.0)))
        }
    }

    pub fn from_f64(v: f64) -> Result<Speed, TimeError> {
        if !v.is_finite() || !(0.1..=10.0).contains(&v) {
            return Err(TimeError::Speed(format!("{v}")));
        }
        Speed::from_millis((v * 1000.0).round() as u32)
    }

    pub fn millis(self) -> u32 {
        self.0
    }

    pub fn as_f64(self) -> f64 {
        f64::from(self.0) / 1000.0
    }

    /// Source frames played during `d` timeline frames, rounded down. Rounding toward the source
    /// start means a range derived from a part of a clip never reaches past the whole clip's end.
    pub fn source_floor(self, d: Frames) -> Frames {
        Frames(clamp_i64(div_floor(
            i128::from(d.0) * i128::from(self.0),
            1000,
        )))
    }

    /// Source frames played during `d` timeline frames, in thousandths of a frame (exact).
    pub fn source_milli(self, d: Frames) -> i128 {
        i128::from(d.0) * i128::from(self.0)
    }
}

impl Default for Speed {
    fn default() -> Self {
        Speed::NORMAL
    }
}

impl TryFrom<f64> for Speed {
    type Error = TimeError;
    fn try_from(v: f64) -> Result<Self, TimeError> {
        Speed::from_f64(v)
    }
}

impl From<Speed> for f64 {
    fn from(s: Speed) -> f64 {
        s.as_f64()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_is_reduced_and_range_checked() {
        assert_eq!(Rate::new(60, 2), Ok(Rate::FPS_30));
        assert_eq!(Rate::new(30000, 1001), Ok(Rate::NTSC_29_97));
        assert!(Rate::new(0, 1).is_err());
        assert!(Rate::new(1, 0).is_err());
        assert!(Rate::new(1, 2).is_err());
        assert!(Rate::new(241, 1).is_err());
        assert!(Rate::new(240, 1).is_ok());
        assert!(Rate::new(1, 1).is_ok());
        assert!(Rate::new(2_000_003, 2_000_001).is_err());
    }

    #[test]
    fn ntsc_ns_round_trip() {
        for rate in [
            Rate::NTSC_23_976,
            Rate::NTSC_29_97,
            Rate::NTSC_59_94,
            Rate::FPS_25,
        ] {
            for f in [
                -1_000_001_i64,
                -7,
                0,
                1,
                2,
                3,
                1001,
                30_000,
                107_892,
                5_000_000_000,
            ] {
                let ns = rate.frames_to_ns(Frames(f));
                assert_eq!(rate.ns_to_frames(ns), Frames(f), "{rate} {f}");
                let s = rate.frames_to_seconds(Frames(f));
                assert_eq!(rate.snap_seconds(s), Frames(f), "{rate} {f}");
            }
        }
        // One NTSC frame is 33366666.67 ns; rounding gives ...667.
        assert_eq!(Rate::NTSC_29_97.frames_to_ns(Frames(1)), 33_366_667);
        // 30000 frames at 29.97 are exactly 1001 s.
        assert_eq!(
            Rate::NTSC_29_97.frames_to_ns(Frames(30_000)),
            1_001_000_000_000
        );
    }

    #[test]
    fn snapping_rounds_half_away_and_is_idempotent() {
        let r = Rate::FPS_24;
        assert_eq!(r.snap_seconds(0.5 / 24.0), Frames(1));
        assert_eq!(r.snap_seconds(-0.5 / 24.0), Frames(-1));
        assert_eq!(r.snap_seconds(0.49 / 24.0), Frames(0));
        for s in [0.0, 0.0123, 1.0, 1.02, 3.3333, 59.999, 3600.5, -2.71] {
            for rate in [r, Rate::NTSC_29_97, Rate::NTSC_23_976, Rate::FPS_60] {
                let once = rate.snap_seconds(s);
                let twice = rate.snap_seconds(rate.frames_to_seconds(once));
                assert_eq!(once, twice);
            }
        }
        assert_eq!(r.try_snap_seconds(f64::NAN), None);
        assert_eq!(r.try_snap_seconds(1e300), None);
        assert_eq!(r.snap_seconds(f64::INFINITY), Frames(MAX_FRAMES));
        assert_eq!(r.snap_seconds(f64::NAN), Frames::ZERO);
    }

    #[test]
    fn ns_rounding_is_half_away_from_zero() {
        // At 2 fps a frame is 0.5 s; 0.25 s is exactly half a frame.
        let r = Rate::new(2, 1).unwrap_or_default();
        assert_eq!(r.ns_to_frames(250_000_000), Frames(1));
        assert_eq!(r.ns_to_frames(-250_000_000), Frames(-1));
        assert_eq!(r.ns_to_frames(249_999_999), Frames(0));
    }

    #[test]
    fn rescale_between_rates() {
        assert_eq!(Rate::FPS_30.rescale(Frames(30), Rate::FPS_60), Frames(60));
        assert_eq!(Rate::FPS_30.rescale(Frames(1), Rate::FPS_24), Frames(1));
        assert_eq!(Rate::FPS_30.rescale(Frames(5), Rate::FPS_24), Frames(4));
        assert_eq!(
            Rate::FPS_30.rescale(Frames(30), Rate::NTSC_29_97),
            Frames(30)
        );
        assert_eq!(
            Rate::FPS_30.rescale(Frames(36_000), Rate::NTSC_29_97),
            Frames(35_964)
        );
    }

    #[test]
    fn speed_is_range_checked_and_floors_source_time() {
        assert!(Speed::from_f64(0.05).is_err());
        assert!(Speed::from_f64(10.5).is_err());
        assert!(Speed::from_f64(f64::NAN).is_err());
        let s = Speed::from_f64(1.5).unwrap_or_default();
        assert_eq!(s.millis(), 1500);
        assert_eq!(s.source_floor(Frames(3)), Frames(4));
        assert_eq!(s.source_floor(Frames(-3)), Frames(-5));
        assert_eq!(s.source_milli(Frames(3)), 4500);
        assert_eq!(Speed::from_f64(0.3333).map(Speed::millis), Ok(333));
    }

    #[test]
    fn frames_arithmetic_saturates() {
        assert_eq!(Frames(i64::MAX) + Frames(1), Frames(i64::MAX));
        assert_eq!(Frames(i64::MIN) - Frames(1), Frames(i64::MIN));
        assert_eq!(-Frames(i64::MIN), Frames(i64::MAX));
    }
}
