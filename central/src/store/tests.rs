//! The store contract on SQLite, and the pure sequence state.

use super::contract::{self, Fixture};
use super::*;

pub(crate) use super::contract::ev;

/// A SQLite store in a temporary directory; `other` is a second file there.
pub(crate) struct SqliteFixture {
    dir: tempfile::TempDir,
}

impl SqliteFixture {
    pub(crate) fn new() -> SqliteFixture {
        SqliteFixture {
            dir: tempfile::tempdir().unwrap(),
        }
    }
}

impl Fixture for SqliteFixture {
    fn open(&self) -> Box<dyn Store> {
        Box::new(SqliteStore::open(&self.dir.path().join("central.sqlite"), 1 << 20).unwrap())
    }

    fn other(&self) -> Box<dyn Store> {
        Box::new(SqliteStore::open(&self.dir.path().join("other.sqlite"), 1 << 20).unwrap())
    }
}

#[test]
fn the_store_contract_holds_on_sqlite() {
    contract::run_all(&|| Box::new(SqliteFixture::new()));
}

/// A state saved with numbers at the edge of u64 (decoding refuses them now, but a store may hold
/// one from before) neither panics nor wraps, in debug and release.
#[test]
fn sequence_state_at_the_edges_of_u64_does_not_panic() {
    let mut st = SeqState::default();
    for s in [1, u64::MAX - 1, u64::MAX] {
        st.add(s);
    }
    assert_eq!(st.gaps(), [(2, u64::MAX - 2)]);
    st.skip(2, u64::MAX - 2);
    assert_eq!(st.contiguous, u64::MAX);
    st.add(u64::MAX);
    st.skip(u64::MAX, u64::MAX);
    assert!(st.gaps().is_empty());
    assert_eq!(st.highest(), u64::MAX);
}

#[test]
fn sequence_state_tracks_gaps_and_gives_up_on_lost_ones() {
    let mut st = SeqState::default();
    for s in [1, 2, 5, 6, 9] {
        st.add(s);
    }
    assert_eq!(st.contiguous, 2);
    assert_eq!(st.gaps(), [(3, 4), (7, 8)]);
    st.add(3);
    st.add(4);
    assert_eq!((st.contiguous, st.gaps()), (6, vec![(7, 8)]));
    st.skip(7, 8);
    assert_eq!(
        (st.contiguous, st.gaps(), st.lost.clone()),
        (9, vec![], vec![(7, 8)])
    );
    assert_eq!(st.highest(), 9);
}
