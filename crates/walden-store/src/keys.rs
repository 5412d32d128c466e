//! The state map's key, a (namespace, key) pair ordered bytewise, namespace first, and the
//! borrowed forms lookups and scan bounds take, so that neither allocates.

use crate::codec::Bytes;
use std::borrow::Borrow;
use std::cmp::Ordering;

/// Map key: namespace then key, ordered bytewise (preconditions and a transaction's own
/// writes are keyed by it).
pub(crate) type MapKey = (Bytes, Bytes);

/// A (namespace, key) pair, owned or borrowed; all of them order alike.
pub(crate) trait KeyPair {
    /// The namespace.
    fn ns(&self) -> &[u8];
    /// The key within the namespace.
    fn key(&self) -> &[u8];
}

/// The owned key the state map holds.
#[derive(Debug, Clone)]
pub(crate) struct EntryKey {
    pub ns: Bytes,
    pub key: Bytes,
}

/// A (namespace, key) to look up, borrowed.
#[derive(Debug, Clone, Copy)]
pub(crate) struct KeyRef<'a> {
    pub ns: &'a [u8],
    pub key: &'a [u8],
}

impl KeyPair for EntryKey {
    fn ns(&self) -> &[u8] {
        &self.ns
    }
    fn key(&self) -> &[u8] {
        &self.key
    }
}

impl KeyPair for KeyRef<'_> {
    fn ns(&self) -> &[u8] {
        self.ns
    }
    fn key(&self) -> &[u8] {
        self.key
    }
}

impl Ord for dyn KeyPair + '_ {
    fn cmp(&self, other: &Self) -> Ordering {
        self.ns()
            .cmp(other.ns())
            .then_with(|| self.key().cmp(other.key()))
    }
}

impl PartialOrd for dyn KeyPair + '_ {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for dyn KeyPair + '_ {
    fn eq(&self, other: &Self) -> bool {
        self.ns() == other.ns() && self.key() == other.key()
    }
}

impl Eq for dyn KeyPair + '_ {}

impl<'a> Borrow<dyn KeyPair + 'a> for EntryKey {
    fn borrow(&self) -> &(dyn KeyPair + 'a) {
        self
    }
}

impl Ord for EntryKey {
    fn cmp(&self, other: &Self) -> Ordering {
        (self as &dyn KeyPair).cmp(other as &dyn KeyPair)
    }
}

impl PartialOrd for EntryKey {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for EntryKey {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for EntryKey {}

#[cfg(test)]
mod tests {
    use super::*;

    /// Owned and borrowed keys must order exactly like (namespace, key) tuples, or lookups
    /// descend the wrong way and miss keys that are there.
    #[test]
    fn keys_order_like_tuples() {
        let parts: [&[u8]; 7] = [b"", b"a", b"a\0", b"ab", b"b", b"\xff", b"a\xff"];
        let b = |s: &[u8]| -> Bytes { s.into() };
        for ns1 in parts {
            for k1 in parts {
                for ns2 in parts {
                    for k2 in parts {
                        let tuples = (b(ns1), b(k1)).cmp(&(b(ns2), b(k2)));
                        let (e1, e2) = (
                            EntryKey {
                                ns: b(ns1),
                                key: b(k1),
                            },
                            EntryKey {
                                ns: b(ns2),
                                key: b(k2),
                            },
                        );
                        let r = KeyRef { ns: ns1, key: k1 };
                        let at = format!("{ns1:?}/{k1:?} against {ns2:?}/{k2:?}");
                        assert_eq!(e1.cmp(&e2), tuples, "{at}");
                        assert_eq!((&r as &dyn KeyPair).cmp(e2.borrow()), tuples, "{at}");
                        assert_eq!(e1 == e2, ns1 == ns2 && k1 == k2, "{at}");
                    }
                }
            }
        }
    }
}
