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
    /// The heads of both (see [`Heads`]).
    fn heads(&self) -> Heads;
}

/// The first 8 bytes of the namespace and of the key, each read big-endian and padded with
/// zero bytes, kept beside the pointers to them.
///
/// Why: the state map is a B-tree of millions of keys, and a descent compares the key
/// looked for with some 50 keys on the way down. Each of those lives behind its own
/// pointer, so a comparison of whole keys was a cache miss and two `memcmp` calls (the W7
/// profile: a quarter of the store's commit). Heads decide most comparisons without
/// touching the bytes:
/// - heads that differ order as the parts do: at the first differing byte both are real
///   bytes, or the lesser is padding, which means its part ended there, a prefix of the
///   other;
/// - equal heads where one part is no longer than 8 bytes: that part is a prefix of the
///   other (the other's bytes past it, up to 8, are zeros like the padding), so the
///   lengths (kept in the pointers) decide;
/// - otherwise the first 8 bytes are equal, and the rest are compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Heads {
    ns: u64,
    key: u64,
}

impl Heads {
    fn of(ns: &[u8], key: &[u8]) -> Heads {
        Heads {
            ns: head(ns),
            key: head(key),
        }
    }
}

/// The first 8 bytes of `part`, big-endian, padded with zeros.
fn head(part: &[u8]) -> u64 {
    let mut bytes = [0u8; 8];
    let n = part.len().min(8);
    bytes[..n].copy_from_slice(&part[..n]);
    u64::from_be_bytes(bytes)
}

/// Orders two parts by their heads first (see [`Heads`]).
#[inline]
fn compare_part(head_a: u64, a: &[u8], head_b: u64, b: &[u8]) -> Ordering {
    if head_a != head_b {
        head_a.cmp(&head_b)
    } else if a.len() <= 8 || b.len() <= 8 {
        a.len().cmp(&b.len())
    } else {
        a.get(8..).cmp(&b.get(8..))
    }
}

/// The owned key the state map holds.
#[derive(Debug, Clone)]
pub(crate) struct EntryKey {
    /// Private, like `key`: the heads are computed from them once, at [`EntryKey::new`].
    ns: Bytes,
    key: Bytes,
    heads: Heads,
}

impl EntryKey {
    pub fn new(ns: Bytes, key: Bytes) -> EntryKey {
        let heads = Heads::of(&ns, &key);
        EntryKey { ns, key, heads }
    }

    /// The namespace's shared bytes.
    pub fn ns_bytes(&self) -> &Bytes {
        &self.ns
    }

    /// The key's shared bytes.
    pub fn key_bytes(&self) -> &Bytes {
        &self.key
    }
}

/// A (namespace, key) to look up, borrowed.
#[derive(Debug, Clone, Copy)]
pub(crate) struct KeyRef<'a> {
    ns: &'a [u8],
    key: &'a [u8],
    heads: Heads,
}

impl<'a> KeyRef<'a> {
    pub fn new(ns: &'a [u8], key: &'a [u8]) -> KeyRef<'a> {
        KeyRef {
            ns,
            key,
            heads: Heads::of(ns, key),
        }
    }
}

impl KeyPair for EntryKey {
    fn ns(&self) -> &[u8] {
        &self.ns
    }
    fn key(&self) -> &[u8] {
        &self.key
    }
    fn heads(&self) -> Heads {
        self.heads
    }
}

impl KeyPair for KeyRef<'_> {
    fn ns(&self) -> &[u8] {
        self.ns
    }
    fn key(&self) -> &[u8] {
        self.key
    }
    fn heads(&self) -> Heads {
        self.heads
    }
}

/// The order of every kind of pair; generic, so that the map's own comparisons of owned
/// keys (every insert's descent) are inlined rather than called through the trait object.
#[inline]
fn compare<A: KeyPair + ?Sized, B: KeyPair + ?Sized>(a: &A, b: &B) -> Ordering {
    let (ha, hb) = (a.heads(), b.heads());
    compare_part(ha.ns, a.ns(), hb.ns, b.ns())
        .then_with(|| compare_part(ha.key, a.key(), hb.key, b.key()))
}

impl Ord for dyn KeyPair + '_ {
    fn cmp(&self, other: &Self) -> Ordering {
        compare(self, other)
    }
}

impl PartialOrd for dyn KeyPair + '_ {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for dyn KeyPair + '_ {
    fn eq(&self, other: &Self) -> bool {
        self.heads() == other.heads() && self.ns() == other.ns() && self.key() == other.key()
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
        compare(self, other)
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
        let parts: [&[u8]; 13] = [
            b"",
            b"a",
            b"a\0",
            b"ab",
            b"b",
            b"\xff",
            b"a\xff",
            b"abcdefg",
            b"abcdefgh",
            b"abcdefgh\0",
            b"abcdefghi",
            b"abcdefgi",
            b"abcdefg\0\0",
        ];
        let b = |s: &[u8]| -> Bytes { s.into() };
        for ns1 in parts {
            for k1 in parts {
                for ns2 in parts {
                    for k2 in parts {
                        let tuples = (b(ns1), b(k1)).cmp(&(b(ns2), b(k2)));
                        let (e1, e2) = (EntryKey::new(b(ns1), b(k1)), EntryKey::new(b(ns2), b(k2)));
                        let r = KeyRef::new(ns1, k1);
                        let at = format!("{ns1:?}/{k1:?} against {ns2:?}/{k2:?}");
                        assert_eq!(e1.cmp(&e2), tuples, "{at}");
                        assert_eq!((&r as &dyn KeyPair).cmp(e2.borrow()), tuples, "{at}");
                        assert_eq!(e1 == e2, ns1 == ns2 && k1 == k2, "{at}");
                    }
                }
            }
        }
    }

    /// Parts that share their first 8 bytes, or stop short of them, are where heads could
    /// go wrong: every ordering and equality must still be the tuples'.
    fn part() -> impl proptest::strategy::Strategy<Value = Vec<u8>> {
        use proptest::strategy::Strategy as _;
        let stems: Vec<&'static [u8]> = vec![b"", b"a", b"abcdefg", b"abcdefgh", b"abcdefgh\0"];
        let tail =
            proptest::collection::vec(proptest::sample::select(vec![0u8, 1, b'a', 0xff]), 0..4);
        (proptest::sample::select(stems), tail).prop_map(|(stem, tail)| [stem, &tail].concat())
    }

    proptest::proptest! {
        #[test]
        fn heads_never_change_the_order(ns1 in part(), k1 in part(), ns2 in part(), k2 in part()) {
            let b = |s: &[u8]| -> Bytes { s.into() };
            let tuples = (&ns1, &k1).cmp(&(&ns2, &k2));
            let (e1, e2) = (EntryKey::new(b(&ns1), b(&k1)), EntryKey::new(b(&ns2), b(&k2)));
            proptest::prop_assert_eq!(e1.cmp(&e2), tuples);
            let r = KeyRef::new(&ns1, &k1);
            let r: &dyn KeyPair = &r;
            proptest::prop_assert_eq!(r.cmp(e2.borrow()), tuples);
            proptest::prop_assert_eq!(r == e2.borrow(), tuples == Ordering::Equal);
        }
    }
}
