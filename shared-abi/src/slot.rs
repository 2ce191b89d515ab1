//! The payload slot: the one type every party uses for "A or B".
//!
//! On the wire a slot is a `u32` word (`0` = A, `1` = B, [`SLOT_NONE`] = no
//! slot); inside every program it is this enum, so an index out of range, a
//! third slot or a mixed-up "no slot" value cannot be written down. The
//! conversions below are the only place the word and the enum meet.
use crate::control::SLOT_NONE;

/// One of the loader's two payload slots.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub enum Slot {
    /// Slot A (word 0).
    A,
    /// Slot B (word 1).
    B,
}

impl Slot {
    /// Both slots, A first.
    pub const ALL: [Slot; 2] = [Slot::A, Slot::B];

    /// The slot a wire word names; `None` for anything but 0 and 1.
    #[must_use]
    pub const fn from_word(word: u32) -> Option<Slot> {
        match word {
            0 => Some(Slot::A),
            1 => Some(Slot::B),
            _ => None,
        }
    }

    /// The wire word of this slot.
    #[must_use]
    pub const fn word(self) -> u32 {
        match self {
            Slot::A => 0,
            Slot::B => 1,
        }
    }

    /// The wire word of an optional slot ([`SLOT_NONE`] for `None`).
    #[must_use]
    pub const fn word_of(slot: Option<Slot>) -> u32 {
        match slot {
            Some(s) => s.word(),
            None => SLOT_NONE,
        }
    }

    /// Index into per-slot arrays (`0` or `1`).
    #[must_use]
    pub const fn index(self) -> usize {
        match self {
            Slot::A => 0,
            Slot::B => 1,
        }
    }

    /// The other slot.
    #[must_use]
    pub const fn other(self) -> Slot {
        match self {
            Slot::A => Slot::B,
            Slot::B => Slot::A,
        }
    }

    /// `'A'` or `'B'`, as people name the slots.
    #[must_use]
    pub const fn letter(self) -> char {
        match self {
            Slot::A => 'A',
            Slot::B => 'B',
        }
    }

    /// Parses `A`/`B` (either case) or `0`/`1`.
    #[must_use]
    pub fn from_name(name: &str) -> Option<Slot> {
        match name {
            "A" | "a" | "0" => Some(Slot::A),
            "B" | "b" | "1" => Some(Slot::B),
            _ => None,
        }
    }
}

impl core::fmt::Display for Slot {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{}", self.letter())
    }
}

/// A value per slot, indexed by [`Slot`] (no out-of-range index exists).
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct PerSlot<T>(pub [T; 2]);

impl<T> PerSlot<T> {
    /// The values for A and B.
    pub const fn new(a: T, b: T) -> Self {
        PerSlot([a, b])
    }
    /// Slot and value pairs, A first.
    pub fn iter(&self) -> impl Iterator<Item = (Slot, &T)> {
        Slot::ALL.into_iter().zip(self.0.iter())
    }
}

impl<T> core::ops::Index<Slot> for PerSlot<T> {
    type Output = T;
    fn index(&self, slot: Slot) -> &T {
        match slot {
            Slot::A => &self.0[0],
            Slot::B => &self.0[1],
        }
    }
}

impl<T> core::ops::IndexMut<Slot> for PerSlot<T> {
    fn index_mut(&mut self, slot: Slot) -> &mut T {
        match slot {
            Slot::A => &mut self.0[0],
            Slot::B => &mut self.0[1],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_round_trip_and_nothing_else_is_a_slot() {
        for s in Slot::ALL {
            assert_eq!(Slot::from_word(s.word()), Some(s));
            assert_eq!(s.other().other(), s);
            assert_ne!(s.other(), s);
        }
        for w in [2, 3, 0x100, SLOT_NONE] {
            assert_eq!(Slot::from_word(w), None);
        }
        assert_eq!(Slot::word_of(None), SLOT_NONE);
        assert_eq!(
            (Slot::from_name("a"), Slot::from_name("B"), Slot::from_name("C")),
            (Some(Slot::A), Some(Slot::B), None)
        );
        let mut p = PerSlot::new(1, 2);
        p[Slot::B] += 5;
        assert_eq!((p[Slot::A], p[Slot::B]), (1, 7));
    }
}
