//! Time: where "now" comes from ([`Clock`]), and the simulated time derived from it by the time
//! scale ([`SimClock`]).

use std::sync::{Arc, Mutex, RwLock};
use std::time::Instant;

use jiff::{SignedDuration, Timestamp};

use crate::sync::{lock, read, write};

/// Where the simulator reads the current real time from. Simulated time, request timestamps,
/// counters and the `X-Sdk-Date` check all follow it.
#[derive(Debug, Clone, Default)]
pub enum Clock {
    /// The system clock, read monotonically after start (an NTP step does not move jobs).
    #[default]
    System,
    /// A clock that moves only when told to, so that tests can set "now" exactly.
    Manual(ManualClock),
}

impl Clock {
    /// A manual clock starting at `start`, and the handle that moves it.
    pub fn manual(start: Timestamp) -> (Clock, ManualClock) {
        let handle = ManualClock::new(start);
        (Clock::Manual(handle.clone()), handle)
    }
}

/// The handle of a [`Clock::Manual`]; clones share the same time.
#[derive(Debug, Clone)]
pub struct ManualClock(Arc<Mutex<Timestamp>>);

impl ManualClock {
    pub fn new(start: Timestamp) -> Self {
        Self(Arc::new(Mutex::new(start)))
    }

    pub fn now(&self) -> Timestamp {
        *lock(&self.0)
    }

    pub fn set(&self, now: Timestamp) {
        *lock(&self.0) = now;
    }

    /// Moves the clock forward by `by` (saturating at the end of time).
    pub fn advance(&self, by: std::time::Duration) {
        let mut now = lock(&self.0);
        *now = now.saturating_add(by).unwrap_or(Timestamp::MAX);
    }
}

/// The real-time source as the simulator reads it.
#[derive(Debug)]
enum RealTime {
    System { started: Instant, at: Timestamp },
    Manual(ManualClock),
}

impl RealTime {
    fn now(&self) -> Timestamp {
        match self {
            RealTime::System { started, at } => at
                .saturating_add(started.elapsed())
                .unwrap_or(Timestamp::MAX),
            RealTime::Manual(clock) => clock.now(),
        }
    }
}

/// Simulated time: real time sped up by the time scale. Scale changes are kept as segments so that
/// a simulated instant maps back to the exact real instant it happened (a job's `terminal_at`).
#[derive(Debug)]
pub(crate) struct SimClock {
    real: RealTime,
    segments: RwLock<Vec<Segment>>,
}

#[derive(Debug, Clone, Copy)]
struct Segment {
    real: Timestamp,
    sim: Timestamp,
    scale: f64,
}

impl SimClock {
    pub(crate) fn new(clock: &Clock, scale: f64) -> Self {
        let real = match clock {
            Clock::System => RealTime::System {
                started: Instant::now(),
                at: Timestamp::now(),
            },
            Clock::Manual(handle) => RealTime::Manual(handle.clone()),
        };
        let now = real.now();
        Self {
            real,
            segments: RwLock::new(vec![Segment {
                real: now,
                sim: now,
                scale,
            }]),
        }
    }

    pub(crate) fn real_now(&self) -> Timestamp {
        self.real.now()
    }

    pub(crate) fn sim_now(&self) -> Timestamp {
        let real = self.real_now();
        let segment = self.current();
        add(
            segment.sim,
            scaled(real.duration_since(segment.real), segment.scale),
        )
    }

    pub(crate) fn scale(&self) -> f64 {
        self.current().scale
    }

    pub(crate) fn set_scale(&self, scale: f64) {
        let real = self.real_now();
        let sim = self.sim_now();
        write(&self.segments).push(Segment { real, sim, scale });
    }

    /// The real instant at which simulated time was (or will be, at the current scale) `sim`.
    pub(crate) fn sim_to_real(&self, sim: Timestamp) -> Timestamp {
        let segments = read(&self.segments);
        // Before the first segment there is no history: extrapolate from the first one.
        let segment = segments
            .iter()
            .rev()
            .find(|s| s.sim <= sim)
            .unwrap_or(&segments[0]);
        add(
            segment.real,
            scaled(sim.duration_since(segment.sim), 1.0 / segment.scale),
        )
    }

    fn current(&self) -> Segment {
        let segments = read(&self.segments);
        // Never empty: `new` creates the first segment.
        segments[segments.len() - 1]
    }
}

/// `t + d`, saturating at the ends of time instead of panicking.
pub(crate) fn add(t: Timestamp, d: SignedDuration) -> Timestamp {
    t.saturating_add(d).unwrap_or(if d.is_negative() {
        Timestamp::MIN
    } else {
        Timestamp::MAX
    })
}

/// A duration of `secs` seconds, saturating instead of panicking on absurd inputs.
pub(crate) fn secs(secs: f64) -> SignedDuration {
    SignedDuration::try_from_secs_f64(secs).unwrap_or(if secs < 0.0 {
        SignedDuration::MIN
    } else {
        SignedDuration::MAX
    })
}

fn scaled(d: SignedDuration, factor: f64) -> SignedDuration {
    secs(d.as_secs_f64() * factor)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn t0() -> Timestamp {
        "2024-11-06T06:19:43.195Z".parse().unwrap()
    }

    #[test]
    fn simulated_time_runs_scaled_from_the_injected_clock() {
        let (clock, handle) = Clock::manual(t0());
        let c = SimClock::new(&clock, 60.0);
        assert_eq!(c.sim_now(), t0());
        handle.advance(std::time::Duration::from_secs(1));
        assert_eq!(c.real_now(), add(t0(), SignedDuration::from_secs(1)));
        assert_eq!(c.sim_now(), add(t0(), SignedDuration::from_mins(1)));
    }

    #[test]
    fn clock_maps_sim_back_to_real_across_scale_changes() {
        let (clock, handle) = Clock::manual(t0());
        let c = SimClock::new(&clock, 60.0);
        // One simulated minute later is one real second later.
        let minute = add(t0(), SignedDuration::from_mins(1));
        assert_eq!(
            c.sim_to_real(minute),
            add(t0(), SignedDuration::from_secs(1))
        );
        handle.advance(std::time::Duration::from_secs(2));
        c.set_scale(1.0);
        assert_eq!(c.scale(), 1.0);
        // The first minute still maps through the old scale; later ones through the new one.
        assert_eq!(
            c.sim_to_real(minute),
            add(t0(), SignedDuration::from_secs(1))
        );
        let sim_at_change = add(t0(), SignedDuration::from_mins(2));
        assert_eq!(c.sim_now(), sim_at_change);
        assert_eq!(
            c.sim_to_real(add(sim_at_change, SignedDuration::from_secs(10))),
            add(t0(), SignedDuration::from_secs(12))
        );
    }

    #[test]
    fn manual_clock_can_be_set_and_saturates() {
        let handle = ManualClock::new(t0());
        handle.set(Timestamp::UNIX_EPOCH);
        assert_eq!(handle.now(), Timestamp::UNIX_EPOCH);
        handle.advance(std::time::Duration::MAX);
        assert_eq!(handle.now(), Timestamp::MAX);
        assert_eq!(secs(f64::INFINITY), SignedDuration::MAX);
        assert_eq!(secs(-1e300), SignedDuration::MIN);
    }
}
