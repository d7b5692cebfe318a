//! The leader's wall clock: the time it stamps on every proposal and the time its scheduler
//! compares deletion dates with. Replicas never read a clock; they apply the stamped time.

use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

/// Where "now" comes from.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Clock {
    /// The system clock.
    #[default]
    System,
    /// DANGER, tests only: the system clock plus a signed offset in milliseconds read from this
    /// file at every use (a missing or unreadable file means no offset). Lets end-to-end tests
    /// move a running cluster past a 7-day deletion window without waiting for it.
    DangerOffsetFile(PathBuf),
}

impl Clock {
    /// Milliseconds since the Unix epoch.
    pub fn now_ms(&self) -> u64 {
        let system = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        match self {
            Clock::System => system,
            Clock::DangerOffsetFile(path) => {
                let offset = std::fs::read_to_string(path)
                    .ok()
                    .and_then(|s| s.trim().parse::<i64>().ok())
                    .unwrap_or(0);
                system.saturating_add_signed(offset)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offset_file_moves_time_and_a_missing_file_does_not() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("offset");
        let clock = Clock::DangerOffsetFile(path.clone());
        let base = Clock::System.now_ms();
        assert!(clock.now_ms().abs_diff(base) < 5_000);
        std::fs::write(&path, "691200000\n").unwrap(); // 8 days
        assert!(clock.now_ms() >= base + 691_200_000);
        std::fs::write(&path, "not a number").unwrap();
        assert!(clock.now_ms().abs_diff(base) < 5_000);
    }
}
