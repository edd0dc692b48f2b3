//! A small bit set for role and factor ids: inline up to 256 members, no allocation below that.

use smallvec::SmallVec;

/// A set of small integers.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct BitSet {
    words: SmallVec<[u64; 4]>,
}

impl BitSet {
    /// An empty set.
    pub fn new() -> Self {
        BitSet::default()
    }

    /// Adds `index`.
    pub fn insert(&mut self, index: usize) {
        let word = index / 64;
        if self.words.len() <= word {
            self.words.resize(word + 1, 0);
        }
        self.words[word] |= 1 << (index % 64);
    }

    /// Whether `index` is in the set.
    pub fn contains(&self, index: usize) -> bool {
        self.words
            .get(index / 64)
            .is_some_and(|word| word & (1 << (index % 64)) != 0)
    }

    /// Adds every member of `other`.
    pub fn union_with(&mut self, other: &BitSet) {
        if self.words.len() < other.words.len() {
            self.words.resize(other.words.len(), 0);
        }
        for (mine, theirs) in self.words.iter_mut().zip(&other.words) {
            *mine |= theirs;
        }
    }

    /// Whether the two sets share a member.
    pub fn intersects(&self, other: &BitSet) -> bool {
        self.words
            .iter()
            .zip(&other.words)
            .any(|(mine, theirs)| mine & theirs != 0)
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.words.iter().all(|word| *word == 0)
    }

    /// The members in increasing order.
    pub fn iter(&self) -> impl Iterator<Item = usize> + '_ {
        self.words.iter().enumerate().flat_map(|(index, word)| {
            let mut bits = *word;
            std::iter::from_fn(move || {
                if bits == 0 {
                    return None;
                }
                let bit = bits.trailing_zeros() as usize;
                bits &= bits - 1;
                Some(index * 64 + bit)
            })
        })
    }

    /// The members of `self` that are also in `other`, in increasing order.
    pub fn iter_intersection<'a>(&'a self, other: &'a BitSet) -> impl Iterator<Item = usize> + 'a {
        self.words
            .iter()
            .zip(&other.words)
            .enumerate()
            .flat_map(|(index, (mine, theirs))| {
                let mut bits = mine & theirs;
                std::iter::from_fn(move || {
                    if bits == 0 {
                        return None;
                    }
                    let bit = bits.trailing_zeros() as usize;
                    bits &= bits - 1;
                    Some(index * 64 + bit)
                })
            })
    }
}

impl FromIterator<usize> for BitSet {
    fn from_iter<I: IntoIterator<Item = usize>>(iter: I) -> Self {
        let mut set = BitSet::new();
        for index in iter {
            set.insert(index);
        }
        set
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeSet;

    proptest! {
        #[test]
        fn behaves_like_a_set(a in proptest::collection::btree_set(0usize..600, 0..40),
                              b in proptest::collection::btree_set(0usize..600, 0..40)) {
            let set_a: BitSet = a.iter().copied().collect();
            let set_b: BitSet = b.iter().copied().collect();
            prop_assert_eq!(set_a.iter().collect::<BTreeSet<_>>(), a.clone());
            prop_assert_eq!(set_a.intersects(&set_b), !a.is_disjoint(&b));
            let both: BTreeSet<usize> = set_a.iter_intersection(&set_b).collect();
            prop_assert_eq!(both, a.intersection(&b).copied().collect::<BTreeSet<_>>());
            let mut union = set_a.clone();
            union.union_with(&set_b);
            prop_assert_eq!(union.iter().collect::<BTreeSet<_>>(), a.union(&b).copied().collect::<BTreeSet<_>>());
            for probe in 0..600 {
                prop_assert_eq!(set_a.contains(probe), a.contains(&probe));
            }
        }
    }
}
