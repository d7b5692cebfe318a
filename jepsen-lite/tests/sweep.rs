//! Seed sweeps: many simulated histories, each must get exactly its expected verdict.
//! Catches unsound search reductions (a valid history judged invalid) and planted anomalies
//! that slip through or make the search give up.

use jepsen_lite::check::{check_all, AnomalyKind, Options, Validity};
use jepsen_lite::sim::{simulate, Plant, SimConfig};

/// Seeds per sweep; `JEPSEN_LITE_SWEEP_SEEDS` raises it for a longer soak.
fn seeds(default: u64) -> u64 {
    std::env::var("JEPSEN_LITE_SWEEP_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

fn config(seed: u64) -> SimConfig {
    SimConfig {
        seed,
        processes: 4 + (seed % 4) as usize * 4,
        keys: 1 + (seed % 4) as usize,
        calls: 600,
        info_rate: [0.0, 0.05, 0.2, 0.4][(seed / 4 % 4) as usize],
        deletes: !seed.is_multiple_of(3),
    }
}

#[test]
fn valid_histories_are_valid_across_seeds() {
    let opts = Options::default();
    for seed in 0..seeds(60) {
        let sim = simulate(&config(seed), &[]);
        let v = check_all(&sim.history, Some(&sim.replicas), &opts).unwrap();
        assert_eq!(v.validity, Validity::Valid, "seed {seed}: {}", v.summary());
    }
}

#[test]
fn planted_register_anomalies_are_flagged_across_seeds() {
    let opts = Options::default();
    let config = |seed| SimConfig {
        // Up to 28 processes on one key: beyond what the full search decides in budget, so
        // the per-field fallback must catch these.
        processes: 4 + (seed % 5) as usize * 6,
        ..config(seed)
    };
    let plants = [
        (Plant::StaleRead, AnomalyKind::NonLinearizable),
        (Plant::LostWrite, AnomalyKind::NonLinearizable),
        (Plant::LostCreate, AnomalyKind::LostCreate),
        (Plant::Resurrection, AnomalyKind::Resurrected),
        (Plant::LateEncryptAfterDisable, AnomalyKind::StaleRevocation),
        (
            Plant::LateEncryptAfterPolicyDeny,
            AnomalyKind::StaleRevocation,
        ),
    ];
    for seed in 0..seeds(24) {
        for (plant, kind) in plants {
            let sim = simulate(&config(seed), &[plant]);
            let v = check_all(&sim.history, Some(&sim.replicas), &opts).unwrap();
            assert!(
                v.validity == Validity::Invalid && v.has(kind),
                "seed {seed} {plant:?}: {}",
                v.summary()
            );
        }
    }
}
