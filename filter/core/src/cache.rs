//! Parsed identities, kept per distinct certificate so a certificate is parsed
//! once, not on every request. Bounded: past `capacity` the oldest entry goes.

use std::collections::{HashMap, VecDeque};
use std::rc::Rc;

use crate::identity::{IdentityError, PeerIdentity};

/// A parse result as cached: failures are kept too, so garbage is not re-parsed.
pub type Parsed = Result<Rc<PeerIdentity>, IdentityError>;

#[derive(Debug)]
/// Parsed certificates by key (the certificate's digest, or its XFCC hash), evicted oldest first past the capacity.
pub struct IdentityCache {
    capacity: usize,
    entries: HashMap<String, Parsed>,
    /// Keys in insertion order, for eviction.
    order: VecDeque<String>,
}

impl IdentityCache {
    /// An empty cache of at most `capacity` entries (at least one).
    pub fn new(capacity: usize) -> IdentityCache {
        IdentityCache {
            capacity: capacity.max(1),
            entries: HashMap::new(),
            order: VecDeque::new(),
        }
    }

    /// The cached result for `key`, if any.
    pub fn get(&self, key: &str) -> Option<Parsed> {
        self.entries.get(key).cloned()
    }

    /// Returns the cached result for `key`, or parses with `parse` and keeps it.
    /// The flag says whether it was a miss.
    pub fn get_or_parse(&mut self, key: &str, parse: impl FnOnce() -> Result<PeerIdentity, IdentityError>) -> (Parsed, bool) {
        if let Some(hit) = self.get(key) {
            return (hit, false);
        }
        let parsed = parse().map(Rc::new);
        self.insert(key.to_owned(), parsed.clone());
        (parsed, true)
    }

    /// Caches `value` under `key`, evicting the oldest entries past the capacity.
    pub fn insert(&mut self, key: String, value: Parsed) {
        if self.entries.insert(key.clone(), value).is_none() {
            self.order.push_back(key);
        }
        self.evict_overflow();
    }

    fn evict_overflow(&mut self) {
        while self.entries.len() > self.capacity {
            let Some(old) = self.order.pop_front() else { break };
            self.entries.remove(&old);
        }
    }

    /// How many entries are cached.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Changes the bound (a new configuration), evicting as needed.
    pub fn set_capacity(&mut self, capacity: usize) {
        self.capacity = capacity.max(1);
        self.evict_overflow();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fail(n: usize) -> Result<PeerIdentity, IdentityError> {
        Err(IdentityError::Subject(n.to_string()))
    }

    #[test]
    #[allow(clippy::panic)]
    fn a_key_is_parsed_once() {
        let mut c = IdentityCache::new(4);
        let (_, miss) = c.get_or_parse("a", || fail(1));
        assert!(miss);
        let (v, miss) = c.get_or_parse("a", || panic!("parsed twice"));
        assert!(!miss);
        assert_eq!(v, Err(IdentityError::Subject("1".into())));
    }

    #[test]
    fn the_oldest_entry_goes_past_capacity() {
        let mut c = IdentityCache::new(2);
        for k in ["a", "b", "c"] {
            let _ = c.get_or_parse(k, || fail(0));
        }
        assert_eq!(c.len(), 2);
        assert!(c.get("a").is_none());
        assert!(c.get("c").is_some());
        c.set_capacity(1);
        assert_eq!(c.len(), 1);
        assert!(c.get("c").is_some());
    }
}
