//! Locks that outlive a panic. A thread that panicked while holding one of our locks left data
//! that each writer keeps consistent in one step (a counter, a swapped `Arc`, a pool of
//! connections), so the data is used as it is rather than taking the process down with it: the
//! door and the ingest keep going. The one place both binaries recover a poisoned lock.

use std::sync::{Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};

/// `lock` of a [`Mutex`] that recovers the guard of a poisoned lock.
pub trait Recover {
    type Target;
    fn lock_or_recover(&self) -> MutexGuard<'_, Self::Target>;
}

impl<T> Recover for Mutex<T> {
    type Target = T;
    fn lock_or_recover(&self) -> MutexGuard<'_, T> {
        self.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// `read` and `write` of an [`RwLock`] that recover the guard of a poisoned lock.
pub trait RecoverRw {
    type Target;
    fn read_or_recover(&self) -> RwLockReadGuard<'_, Self::Target>;
    fn write_or_recover(&self) -> RwLockWriteGuard<'_, Self::Target>;
}

impl<T> RecoverRw for RwLock<T> {
    type Target = T;
    fn read_or_recover(&self) -> RwLockReadGuard<'_, T> {
        self.read().unwrap_or_else(|e| e.into_inner())
    }
    fn write_or_recover(&self) -> RwLockWriteGuard<'_, T> {
        self.write().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_poisoned_lock_still_gives_its_data() {
        let m = std::sync::Arc::new(Mutex::new(1));
        let rw = std::sync::Arc::new(RwLock::new(2));
        let (m2, rw2) = (m.clone(), rw.clone());
        let _ = std::thread::spawn(move || {
            let _g = m2.lock().unwrap();
            let _w = rw2.write().unwrap();
            panic!("poison both");
        })
        .join();
        assert!(m.is_poisoned() && rw.is_poisoned());
        *m.lock_or_recover() += 1;
        *rw.write_or_recover() += 1;
        assert_eq!((*m.lock_or_recover(), *rw.read_or_recover()), (2, 3));
    }
}
