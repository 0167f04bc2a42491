//! Fair admission to the password hasher: a bounded number of calls run, a bounded number
//! wait, and when every place is taken a light client still gets one, in place of a waiting
//! call of the heaviest.
//!
//! Each call belongs to a party (the client address the router counted it as; `None` for
//! calls without one). A party's weight is the places it holds now (running or waiting) plus
//! its recent calls in the shared [`Ledger`], admitted or refused, here or by the login
//! limiter, decaying by half every three seconds: a client that logs in now and then weighs a
//! few units, a client looping logins (or retrying refusals at once) weighs tens to thousands.
//! Admission, for a party `p`:
//!
//! - a free permit and nobody waiting: `p` runs at once;
//! - else a free waiting place: `p` waits;
//! - else, when `p` weighs clearly less than the heaviest waiting party (by more than a call
//!   and a half), that party's most recent waiter is refused in its stead and `p` waits;
//! - else `p` is refused.
//!
//! A finished call hands its permit to the waiter of the lightest party (the oldest of
//! those).

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Instant;

use tokio::sync::oneshot;

use crate::ledger::Ledger;
pub(super) use crate::ledger::Party;

/// How much heavier than an arriving party a waiting one must be for the arrival to take its
/// place: more than one call, so that neither equals (whose weights differ by decay alone) nor
/// a party's own next call push each other out.
const MARGIN: f64 = 1.5;

/// The admission state, behind one lock: every change of who runs, waits or holds what is
/// made under it.
#[derive(Debug)]
pub(super) struct Gate {
    permits: usize,
    max_waiting: usize,
    /// Recent calls per party, shared with the login limiter.
    ledger: Arc<Ledger>,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    running: usize,
    /// Places (running plus waiting) per party; parties holding none are absent.
    held: HashMap<Party, usize>,
    waiting: VecDeque<Waiter>,
    /// Waiters handed a permit that have not taken it yet.
    granted: Vec<u64>,
    next_id: u64,
}

#[derive(Debug)]
struct Waiter {
    id: u64,
    party: Party,
    /// `true`: run; `false`: refused to make room for a party holding nothing.
    wake: oneshot::Sender<bool>,
}

/// Why a call was not admitted.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Refused;

impl State {
    fn hold(&mut self, party: Party) {
        *self.held.entry(party).or_insert(0) += 1;
    }

    fn unhold(&mut self, party: Party) {
        if let Some(n) = self.held.get_mut(&party) {
            *n -= 1;
            if *n == 0 {
                self.held.remove(&party);
            }
        }
    }

    fn holding(&self, party: Party) -> usize {
        self.held.get(&party).copied().unwrap_or(0)
    }

    /// Places held plus recent calls.
    fn weight(&self, ledger: &Ledger, party: Party, now: Instant) -> f64 {
        self.holding(party) as f64 + ledger.weight(party, now)
    }

    /// Hands free permits to waiters, lightest party first.
    fn dispatch(&mut self, permits: usize, ledger: &Ledger) {
        let now = Instant::now();
        while self.running < permits {
            let Some(index) = (0..self.waiting.len()).min_by(|&a, &b| {
                let weight = |i: usize| self.weight(ledger, self.waiting[i].party, now);
                weight(a).total_cmp(&weight(b)).then(a.cmp(&b))
            }) else {
                return;
            };
            let Some(waiter) = self.waiting.remove(index) else {
                return;
            };
            self.running += 1;
            self.granted.push(waiter.id);
            // A waiter gone already finds itself granted when its guard drops, and gives
            // the permit back then.
            let _ = waiter.wake.send(true);
        }
    }
}

impl Gate {
    pub(super) fn new(permits: usize, max_waiting: usize) -> Self {
        Self {
            permits,
            max_waiting,
            ledger: Arc::default(),
            state: Mutex::new(State::default()),
        }
    }

    /// The ledger of recent calls the gate weighs parties by.
    pub(super) fn ledger(&self) -> &Arc<Ledger> {
        &self.ledger
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Every change is complete before anything that could panic: the state stays whole.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Admits a call of `party` and waits for its permit; `Err` when refused, at once or
    /// later (when a party holding nothing took its waiting place).
    pub(super) async fn enter(self: &Arc<Self>, party: Party) -> Result<Slot, Refused> {
        let (id, woken) = {
            let now = Instant::now();
            let mut state = self.lock();
            let arriving = state.weight(&self.ledger, party, now);
            self.ledger.record(party, now);
            if state.running < self.permits && state.waiting.is_empty() {
                state.running += 1;
                state.hold(party);
                return Ok(Slot {
                    gate: Arc::clone(self),
                    party,
                });
            }
            if state.waiting.len() >= self.max_waiting {
                // Of the waiters of the heaviest party, the most recent; only when that party
                // is clearly heavier than this one.
                let heaviest = (0..state.waiting.len())
                    .map(|i| (state.weight(&self.ledger, state.waiting[i].party, now), i))
                    .max_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)))
                    .filter(|&(weight, _)| weight > arriving + MARGIN);
                let Some(victim) = heaviest.and_then(|(_, i)| state.waiting.remove(i)) else {
                    return Err(Refused);
                };
                state.unhold(victim.party);
                let _ = victim.wake.send(false);
            }
            let id = state.next_id;
            state.next_id += 1;
            let (wake, woken) = oneshot::channel();
            state.hold(party);
            state.waiting.push_back(Waiter { id, party, wake });
            (id, woken)
        };
        let mut waiting = Waiting {
            gate: self,
            id,
            party,
            done: false,
        };
        match woken.await {
            Ok(true) => {
                waiting.done = true;
                let mut state = self.lock();
                state.granted.retain(|&granted| granted != id);
                drop(state);
                Ok(Slot {
                    gate: Arc::clone(self),
                    party,
                })
            }
            // Refused in favour of a party holding nothing: its place was already given up.
            Ok(false) => {
                waiting.done = true;
                Err(Refused)
            }
            Err(_) => Err(Refused),
        }
    }

    /// Takes every permit and waiting place for `party`, as if its calls held them all.
    #[cfg(test)]
    pub(super) fn fill(&self, party: Party) {
        let mut state = self.lock();
        while state.running < self.permits {
            state.running += 1;
            state.hold(party);
        }
        while state.waiting.len() < self.max_waiting {
            let id = state.next_id;
            state.next_id += 1;
            let (wake, _) = oneshot::channel();
            state.hold(party);
            state.waiting.push_back(Waiter { id, party, wake });
        }
    }

    /// Running and waiting calls together.
    #[cfg(test)]
    pub(super) fn admitted(&self) -> usize {
        let state = self.lock();
        state.running + state.waiting.len()
    }

    fn release(&self, party: Party) {
        let mut state = self.lock();
        state.running -= 1;
        state.unhold(party);
        state.dispatch(self.permits, &self.ledger);
    }
}

/// A permit to run, given back on drop (and handed to the next waiter).
#[derive(Debug)]
pub(super) struct Slot {
    gate: Arc<Gate>,
    party: Party,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.gate.release(self.party);
    }
}

/// A call waiting for its permit; dropped before it got one (its caller went away), it gives
/// its place back, or the permit it was just handed.
struct Waiting<'a> {
    gate: &'a Gate,
    id: u64,
    party: Party,
    done: bool,
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        let mut state = self.gate.lock();
        if let Some(index) = state.waiting.iter().position(|w| w.id == self.id) {
            state.waiting.remove(index);
            state.unhold(self.party);
        } else if let Some(index) = state.granted.iter().position(|&g| g == self.id) {
            state.granted.swap_remove(index);
            state.running -= 1;
            state.unhold(self.party);
            state.dispatch(self.gate.permits, &self.gate.ledger);
        }
        // Neither: it was refused in favour of another party, which already gave its place up.
    }
}

#[cfg(test)]
mod tests {
    use std::future::Future;
    use std::pin::Pin;
    use std::task::Poll;

    use super::*;

    fn party(n: u8) -> Party {
        Some(std::net::IpAddr::from([192, 0, 2, n]))
    }

    async fn poll_once<F: Future + Unpin>(future: &mut F) -> Poll<F::Output> {
        std::future::poll_fn(|cx| Poll::Ready(Pin::new(&mut *future).poll(cx))).await
    }

    /// Asserts that `who` is refused at once (rather than waiting, which would hang the test).
    async fn assert_refused(gate: &Arc<Gate>, who: Party) {
        let mut entry = enter(gate, who);
        assert!(
            matches!(poll_once(&mut entry).await, Poll::Ready(Err(Refused))),
            "{who:?} was not refused at once"
        );
    }

    type Entry<'a> = Pin<Box<dyn Future<Output = Result<Slot, Refused>> + 'a>>;

    fn enter(gate: &Arc<Gate>, who: Party) -> Entry<'_> {
        Box::pin(gate.enter(who))
    }

    #[tokio::test]
    async fn a_client_holding_nothing_takes_the_place_of_the_biggest_holder() {
        let gate = Arc::new(Gate::new(1, 3));
        let running = gate.enter(party(1)).await.unwrap();
        // The abuser fills every waiting place.
        let mut queued: Vec<_> = (0..3).map(|_| enter(&gate, party(1))).collect();
        for waiter in &mut queued {
            assert!(poll_once(waiter).await.is_pending());
        }
        // Another call of the abuser is refused...
        assert_refused(&gate, party(1)).await;
        // ...a client holding nothing gets in, in place of the abuser's newest waiter...
        let mut victim = enter(&gate, party(2));
        assert!(poll_once(&mut victim).await.is_pending());
        assert!(matches!(
            poll_once(&mut queued[2]).await,
            Poll::Ready(Err(Refused))
        ));
        assert_eq!(gate.admitted(), 4);
        // ...and, holding fewer places, runs next.
        drop(running);
        let Poll::Ready(Ok(slot)) = poll_once(&mut victim).await else {
            panic!("the client holding one place runs first");
        };
        assert!(poll_once(&mut queued[0]).await.is_pending());
        drop(slot);
        assert!(matches!(
            poll_once(&mut queued[0]).await,
            Poll::Ready(Ok(_))
        ));
    }

    /// On a gate of one permit and one waiting place: party 3 calls once and leaves, party 1
    /// runs, party 2 waits (one call each, so 2 and 3 weigh alike).
    async fn two_waits_behind_one(gate: &Arc<Gate>) -> (Slot, Entry<'_>) {
        drop(gate.enter(party(3)).await.unwrap());
        let running = gate.enter(party(1)).await.unwrap();
        let mut waiting = enter(gate, party(2));
        assert!(poll_once(&mut waiting).await.is_pending());
        (running, waiting)
    }

    #[tokio::test]
    async fn equals_never_push_each_other_out_and_a_gate_without_a_queue_refuses() {
        let gate = Arc::new(Gate::new(1, 1));
        let (_running, mut waiting) = two_waits_behind_one(&gate).await;
        // A third client, which asked as often as the waiting one, is refused: it does not
        // push it out.
        assert_refused(&gate, party(3)).await;
        assert!(poll_once(&mut waiting).await.is_pending());
        // Without waiting places, nobody is bumped: a full gate refuses.
        let strict = Arc::new(Gate::new(1, 0));
        let _held = strict.enter(party(1)).await.unwrap();
        assert_refused(&strict, party(2)).await;
    }

    /// A client's refused calls still weigh: retrying at once makes it heavier, never lighter,
    /// and a client asking once then takes its place.
    #[tokio::test]
    async fn retrying_refusals_at_once_makes_a_client_heavy() {
        let gate = Arc::new(Gate::new(1, 1));
        let _running = gate.enter(party(1)).await.unwrap();
        let mut first = enter(&gate, party(1));
        assert!(poll_once(&mut first).await.is_pending());
        // Party 3, light, takes the place of party 1's waiter (2 places, 2 calls).
        let mut waiting = enter(&gate, party(3));
        assert!(poll_once(&mut waiting).await.is_pending());
        assert!(matches!(
            poll_once(&mut first).await,
            Poll::Ready(Err(Refused))
        ));
        // It retries at once, again and again: refused, and heavier each time.
        for _ in 0..10 {
            assert_refused(&gate, party(3)).await;
        }
        // A client asking once is now clearly lighter, and takes party 3's place.
        let mut light = enter(&gate, party(4));
        assert!(poll_once(&mut light).await.is_pending());
        assert!(matches!(
            poll_once(&mut waiting).await,
            Poll::Ready(Err(Refused))
        ));
    }

    /// Admitted calls weigh too: a client looping logins one at a time, each admitted, makes
    /// way for a client logging in now and then, however few places it holds at that instant.
    #[tokio::test]
    async fn a_client_looping_admitted_calls_makes_way_for_an_occasional_one() {
        let gate = Arc::new(Gate::new(1, 1));
        for _ in 0..50 {
            drop(gate.enter(party(2)).await.unwrap());
        }
        drop(gate.enter(party(3)).await.unwrap());
        let _running = gate.enter(party(1)).await.unwrap();
        let mut looping = enter(&gate, party(2));
        assert!(poll_once(&mut looping).await.is_pending());
        let mut occasional = enter(&gate, party(3));
        assert!(poll_once(&mut occasional).await.is_pending());
        assert!(matches!(
            poll_once(&mut looping).await,
            Poll::Ready(Err(Refused))
        ));
    }

    /// Refusals the login limiter recorded weigh as much as the gate's own.
    #[tokio::test]
    async fn refusals_recorded_elsewhere_make_a_client_heavy() {
        let gate = Arc::new(Gate::new(1, 1));
        let (_running, mut waiting) = two_waits_behind_one(&gate).await;
        // As light as party 3: it stays.
        assert_refused(&gate, party(3)).await;
        let now = Instant::now();
        for _ in 0..10 {
            gate.ledger().record(party(2), now);
        }
        let mut light = enter(&gate, party(4));
        assert!(poll_once(&mut light).await.is_pending());
        assert!(matches!(
            poll_once(&mut waiting).await,
            Poll::Ready(Err(Refused))
        ));
    }

    #[tokio::test]
    async fn cancelled_waiters_and_unclaimed_permits_are_given_back() {
        let gate = Arc::new(Gate::new(1, 2));
        let running = gate.enter(party(1)).await.unwrap();
        let mut first = enter(&gate, party(2));
        let mut second = enter(&gate, party(3));
        assert!(poll_once(&mut first).await.is_pending());
        assert!(poll_once(&mut second).await.is_pending());
        drop(first);
        assert_eq!(gate.admitted(), 2);
        // The permit is handed to `second`, which goes away before taking it.
        drop(running);
        drop(second);
        assert_eq!(gate.admitted(), 0);
        assert!(gate.lock().held.is_empty());
        let _again = gate.enter(party(4)).await.unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn every_admitted_call_runs_and_the_books_balance() {
        let gate = Arc::new(Gate::new(2, 4));
        let tasks: Vec<_> = (0..64u8)
            .map(|n| {
                let gate = Arc::clone(&gate);
                tokio::spawn(async move {
                    match gate.enter(party(n % 5)).await {
                        Ok(slot) => {
                            tokio::task::yield_now().await;
                            drop(slot);
                            true
                        }
                        Err(Refused) => false,
                    }
                })
            })
            .collect();
        let mut ran = 0;
        for task in tasks {
            ran += usize::from(task.await.unwrap());
        }
        assert!(ran >= 2, "at least the first calls ran");
        assert_eq!(gate.admitted(), 0);
        assert!(gate.lock().held.is_empty());
        assert!(gate.lock().granted.is_empty());
    }
}
