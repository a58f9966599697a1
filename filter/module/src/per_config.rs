//! One value per live filter configuration, on one worker. Envoy runs a
//! configuration's streams on every worker; the core's identity cache is
//! single threaded (as the Wasm build's, one per VM), so each worker keeps
//! its own, found by the configuration it belongs to, and none is ever
//! locked. Generic over the configuration and what is cached for it.

use std::sync::{Arc, Weak};

/// One worker's values of type `V`, one per live configuration `C`.
#[derive(Debug)]
pub struct PerConfig<C, V> {
    entries: Vec<(Weak<C>, V)>,
}

impl<C, V> PerConfig<C, V> {
    /// No values yet.
    pub const fn new() -> Self {
        PerConfig { entries: Vec::new() }
    }

    /// The value for `config` (made by `new` the first time), after dropping
    /// the values of configurations Envoy has dropped. Always `Some`; an
    /// `Option` only because the index is not proven in range to the compiler.
    pub fn for_config(&mut self, config: &Arc<C>, new: impl FnOnce(&C) -> V) -> Option<&mut V> {
        self.entries.retain(|(c, _)| c.strong_count() > 0);
        let at = match self.entries.iter().position(|(c, _)| std::ptr::eq(c.as_ptr(), Arc::as_ptr(config))) {
            Some(at) => at,
            None => {
                self.entries.push((Arc::downgrade(config), new(config)));
                self.entries.len() - 1
            }
        };
        self.entries.get_mut(at).map(|(_, value)| value)
    }

    /// How many configurations have a value.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.entries.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_configuration_has_its_value_and_a_dropped_ones_goes() {
        let (a, b) = (Arc::new("a"), Arc::new("b"));
        let mut values: PerConfig<&str, Vec<String>> = PerConfig::new();
        values.for_config(&a, |_| Vec::new()).unwrap().push("seen".into());
        assert_eq!(values.for_config(&a, |_| Vec::new()).unwrap(), &["seen"]);
        assert!(
            values.for_config(&b, |_| Vec::new()).unwrap().is_empty(),
            "b has a value of its own"
        );
        assert_eq!(values.len(), 2);
        drop(a);
        values.for_config(&b, |_| Vec::new());
        assert_eq!(values.len(), 1, "a's value went with a");
    }

    #[test]
    fn a_value_is_made_from_its_configuration() {
        let a = Arc::new(7usize);
        let mut values: PerConfig<usize, Vec<u8>> = PerConfig::new();
        assert_eq!(values.for_config(&a, |size| Vec::with_capacity(*size)).unwrap().capacity(), 7);
    }
}
