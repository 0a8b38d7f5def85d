//! The per-endpoint rate limit, as reservations instead of waits.
//!
//! A reconcile that had to wait for its endpoint's turn would hold one of the bounded reconcile slots while
//! it waited: 2,000 CloudJobs on a busy endpoint would then starve 20 on a free one. So a reconcile asks for
//! a send time (a slot in a GCRA token bucket: `rate` per second, `burst` at once); when the slot is not
//! now, it books it for its CloudJob and requeues until then, freeing its reconcile slot. Booked slots are
//! kept in order, so every waiting CloudJob gets its turn.
//!
//! [`InFlight`] bounds the requests under way to one endpoint, so that an endpoint that never answers holds
//! at most that many reconcile slots (each for the request timeout), never all of them.

use std::{
    collections::HashMap,
    hash::Hash,
    num::NonZeroU32,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

/// A reservation closer than this is simply waited for: a requeue would cost more than it saves.
pub const SEND_NOW_WITHIN: Duration = Duration::from_millis(50);

/// When a request may go.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Turn {
    /// Send now (after waiting this long, at most [`SEND_NOW_WITHIN`]).
    Now(Duration),
    /// Come back after this long: a slot is booked for the caller then.
    Later(Duration),
}

/// Token buckets per endpoint, and the slots booked by callers (CloudJobs) that come back later.
pub struct RateLimiter<E, C> {
    interval: Duration,
    /// How far ahead of now the bucket's theoretical arrival time may run before requests wait (GCRA tau).
    tolerance: Duration,
    state: Mutex<State<E, C>>,
}

struct State<E, C> {
    /// Theoretical arrival time of the next request, per endpoint.
    next_arrival: HashMap<E, Instant>,
    /// Booked send times, per caller.
    booked: HashMap<C, Instant>,
}

impl<E: Eq + Hash + Clone, C: Eq + Hash + Clone> RateLimiter<E, C> {
    pub fn new(rate: NonZeroU32, burst: NonZeroU32) -> Self {
        let interval = Duration::from_secs(1) / rate.get();
        RateLimiter {
            interval,
            tolerance: interval * (burst.get() - 1),
            state: Mutex::new(State {
                next_arrival: HashMap::new(),
                booked: HashMap::new(),
            }),
        }
    }

    /// The turn of `caller`'s next request to `endpoint` at `now`. A caller holding a booked slot uses it.
    pub fn turn(&self, endpoint: &E, caller: &C, now: Instant) -> Turn {
        let Ok(mut state) = self.state.lock() else {
            return Turn::Now(Duration::ZERO);
        };
        let slot = match state.booked.remove(caller) {
            Some(slot) => slot,
            None => {
                let arrival = state.next_arrival.entry(endpoint.clone()).or_insert(now);
                let theoretical = (*arrival).max(now);
                let slot = theoretical
                    .checked_sub(self.tolerance)
                    .unwrap_or(now)
                    .max(now);
                *arrival = theoretical + self.interval;
                slot
            }
        };
        let wait = slot.saturating_duration_since(now);
        if wait <= SEND_NOW_WITHIN {
            Turn::Now(wait)
        } else {
            state.booked.insert(caller.clone(), slot);
            Turn::Later(wait)
        }
    }

    /// Drops the booking of a caller that will not come back (deleted).
    pub fn forget(&self, caller: &C) {
        if let Ok(mut state) = self.state.lock() {
            state.booked.remove(caller);
        }
    }

    /// Keeps only the bookings of callers for which `keep` is true, and forgets idle endpoints.
    pub fn retain(&self, keep: impl Fn(&C) -> bool, now: Instant) {
        if let Ok(mut state) = self.state.lock() {
            state.booked.retain(|caller, _| keep(caller));
            state.next_arrival.retain(|_, arrival| *arrival > now);
        }
    }
}

/// Most requests under way to one endpoint at once.
pub const MAX_IN_FLIGHT_PER_ENDPOINT: usize = 4;

/// Counts of requests under way, per endpoint.
pub struct InFlight<E: Eq + Hash> {
    limit: usize,
    counts: Arc<Mutex<HashMap<E, usize>>>,
}

/// One request under way; dropping it ends it.
pub struct InFlightGuard<E: Eq + Hash> {
    endpoint: E,
    counts: Arc<Mutex<HashMap<E, usize>>>,
}

impl<E: Eq + Hash + Clone> InFlight<E> {
    pub fn new(limit: usize) -> Self {
        InFlight {
            limit,
            counts: Arc::default(),
        }
    }

    /// A place for one more request to `endpoint`, unless `limit` are under way.
    pub fn try_start(&self, endpoint: &E) -> Option<InFlightGuard<E>> {
        let mut counts = self.counts.lock().ok()?;
        let count = counts.entry(endpoint.clone()).or_default();
        if *count >= self.limit {
            return None;
        }
        *count += 1;
        Some(InFlightGuard {
            endpoint: endpoint.clone(),
            counts: self.counts.clone(),
        })
    }
}

impl<E: Eq + Hash> Drop for InFlightGuard<E> {
    fn drop(&mut self) {
        if let Ok(mut counts) = self.counts.lock()
            && let Some(count) = counts.get_mut(&self.endpoint)
        {
            *count = count.saturating_sub(1);
            if *count == 0 {
                counts.remove(&self.endpoint);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limiter(rate: u32, burst: u32) -> RateLimiter<&'static str, u32> {
        RateLimiter::new(
            NonZeroU32::new(rate).expect("rate"),
            NonZeroU32::new(burst).expect("burst"),
        )
    }

    #[test]
    fn a_burst_goes_at_once_then_requests_are_spaced_at_the_rate() {
        let limiter = limiter(10, 3);
        let now = Instant::now();
        let turns: Vec<Turn> = (0..6)
            .map(|caller| limiter.turn(&"a", &caller, now))
            .collect();
        assert_eq!(turns[..3], [Turn::Now(Duration::ZERO); 3]);
        assert_eq!(turns[3], Turn::Later(Duration::from_millis(100)));
        assert_eq!(turns[4], Turn::Later(Duration::from_millis(200)));
        assert_eq!(turns[5], Turn::Later(Duration::from_millis(300)));
    }

    #[test]
    fn a_caller_that_comes_back_uses_its_booked_slot() {
        let limiter = limiter(10, 1);
        let now = Instant::now();
        assert_eq!(limiter.turn(&"a", &1, now), Turn::Now(Duration::ZERO));
        assert_eq!(
            limiter.turn(&"a", &2, now),
            Turn::Later(Duration::from_millis(100))
        );
        assert_eq!(
            limiter.turn(&"a", &3, now),
            Turn::Later(Duration::from_millis(200))
        );
        let back = now + Duration::from_millis(100);
        assert_eq!(limiter.turn(&"a", &2, back), Turn::Now(Duration::ZERO));
        // Caller 3 keeps its place although caller 4 asks before it comes back.
        assert_eq!(
            limiter.turn(&"a", &4, back),
            Turn::Later(Duration::from_millis(200))
        );
        let later = now + Duration::from_millis(200);
        assert_eq!(limiter.turn(&"a", &3, later), Turn::Now(Duration::ZERO));
    }

    #[test]
    fn an_endpoint_gets_at_most_its_limit_of_requests_under_way() {
        let in_flight = InFlight::new(2);
        let first = in_flight.try_start(&"hung").expect("first");
        let _second = in_flight.try_start(&"hung").expect("second");
        assert!(in_flight.try_start(&"hung").is_none(), "a third must wait");
        assert!(
            in_flight.try_start(&"other").is_some(),
            "other endpoints are free"
        );
        drop(first);
        assert!(
            in_flight.try_start(&"hung").is_some(),
            "a finished request frees its place"
        );
    }

    #[test]
    fn endpoints_do_not_share_a_bucket() {
        let limiter = limiter(1, 1);
        let now = Instant::now();
        for caller in 0..100 {
            let _ = limiter.turn(&"busy", &caller, now);
        }
        assert_eq!(limiter.turn(&"free", &1000, now), Turn::Now(Duration::ZERO));
    }

    #[test]
    fn forgotten_and_pruned_callers_leave_nothing_behind() {
        let limiter = limiter(1, 1);
        let now = Instant::now();
        let _ = limiter.turn(&"a", &1, now);
        let _ = limiter.turn(&"a", &2, now);
        let _ = limiter.turn(&"a", &3, now);
        limiter.forget(&2);
        limiter.retain(|caller| *caller != 3, now + Duration::from_secs(10));
        let state = limiter.state.lock().expect("lock");
        assert!(state.booked.is_empty());
        assert!(
            state.next_arrival.is_empty(),
            "idle endpoints are forgotten"
        );
    }
}
