//! Fair admission to the password hasher: a bounded number of calls run, a bounded number
//! wait, and when every place is taken a client that holds none still gets one, in place of
//! a waiting call of the client that holds the most.
//!
//! Each call belongs to a party (the client address the router counted it as; `None` for
//! calls without one). Admission, for a party `p` holding `held(p)` places (running or
//! waiting):
//!
//! - a free permit and nobody waiting: `p` runs at once;
//! - else a free waiting place: `p` waits;
//! - else, when `held(p) == 0`, the most recent waiter of the party holding the most places
//!   (at least one) is refused in its stead and `p` waits;
//! - else `p` is refused.
//!
//! A finished call hands its permit to the waiter whose party holds the fewest places (the
//! oldest of those), so a client with one login waiting is served before a client with many.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tokio::sync::oneshot;

/// Who a call is made for.
pub(super) type Party = Option<IpAddr>;

/// The admission state, behind one lock: every change of who runs, waits or holds what is
/// made under it.
#[derive(Debug)]
pub(super) struct Gate {
    permits: usize,
    max_waiting: usize,
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

    /// Hands free permits to waiters, fewest places held first.
    fn dispatch(&mut self, permits: usize) {
        while self.running < permits {
            let Some(index) = (0..self.waiting.len()).min_by_key(|&i| {
                let waiter = &self.waiting[i];
                (self.holding(waiter.party), i)
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
            state: Mutex::new(State::default()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Every change is complete before anything that could panic: the state stays whole.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Admits a call of `party` and waits for its permit; `Err` when refused, at once or
    /// later (when a party holding nothing took its waiting place).
    pub(super) async fn enter(self: &Arc<Self>, party: Party) -> Result<Slot, Refused> {
        let (id, woken) = {
            let mut state = self.lock();
            if state.running < self.permits && state.waiting.is_empty() {
                state.running += 1;
                state.hold(party);
                return Ok(Slot {
                    gate: Arc::clone(self),
                    party,
                });
            }
            if state.waiting.len() >= self.max_waiting {
                if state.holding(party) > 0 {
                    return Err(Refused);
                }
                // Of the waiters of the party holding the most, the most recent.
                let victim = (0..state.waiting.len())
                    .max_by_key(|&i| (state.holding(state.waiting[i].party), i));
                let Some(victim) = victim.and_then(|i| state.waiting.remove(i)) else {
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
        state.dispatch(self.permits);
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
            state.dispatch(self.gate.permits);
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
        Some(IpAddr::from([192, 0, 2, n]))
    }

    async fn poll_once<F: Future + Unpin>(future: &mut F) -> Poll<F::Output> {
        std::future::poll_fn(|cx| Poll::Ready(Pin::new(&mut *future).poll(cx))).await
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
        assert_eq!(gate.enter(party(1)).await.unwrap_err(), Refused);
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

    #[tokio::test]
    async fn equal_holders_lose_their_newest_waiter_and_a_gate_without_a_queue_refuses() {
        let gate = Arc::new(Gate::new(1, 1));
        let _running = gate.enter(party(1)).await.unwrap();
        let mut waiting = enter(&gate, party(2));
        assert!(poll_once(&mut waiting).await.is_pending());
        // A third client holding nothing bumps the waiter of the party holding the most:
        // equal holders, so the most recent waiter.
        let mut third = enter(&gate, party(3));
        assert!(poll_once(&mut third).await.is_pending());
        assert!(matches!(
            poll_once(&mut waiting).await,
            Poll::Ready(Err(Refused))
        ));
        // Without waiting places, nobody is bumped: a full gate refuses.
        let strict = Arc::new(Gate::new(1, 0));
        let _held = strict.enter(party(1)).await.unwrap();
        assert_eq!(strict.enter(party(2)).await.unwrap_err(), Refused);
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
