//! Retention: which prefix of the chain the leader may prune.
//!
//! Records are pruned only when all three hold: they were exported (`MarkAuditExported`), a
//! signed digest covers them, and their `eventTime` is older than the retention period. Pure:
//! the leader's digest task feeds it the records after the current `pruned_through` and its
//! own clock, and proposes `PruneAudit` with the answer; `apply` re-checks the first two.

use crate::EpochMillis;

use super::AuditRecord;

/// CloudTrail's `eventTime` (`YYYY-MM-DDTHH:MM:SS[.fff]Z`) -> epoch millis; `None` if the
/// text is not that shape or names a time before 1970.
pub fn parse_event_time(text: &str) -> Option<EpochMillis> {
    let b = text.as_bytes();
    if b.len() < 20
        || b[4] != b'-'
        || b[7] != b'-'
        || b[10] != b'T'
        || b[13] != b':'
        || b[16] != b':'
        || !text.ends_with('Z')
    {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let s = text.get(r)?;
        if !s.bytes().all(|c| c.is_ascii_digit()) {
            return None;
        }
        s.parse().ok()
    };
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, s) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || s > 60 {
        return None;
    }
    let frac_ms = match text.get(19..text.len() - 1)? {
        "" => 0,
        f => {
            let digits = f.strip_prefix('.')?;
            if digits.is_empty() || !digits.bytes().all(|c| c.is_ascii_digit()) {
                return None;
            }
            let mut ms = 0i64;
            for (i, c) in digits.bytes().take(3).enumerate() {
                ms += i64::from(c - b'0') * [100, 10, 1][i];
            }
            ms
        }
    };
    // Howard Hinnant's days_from_civil.
    let yy = if mo <= 2 { y - 1 } else { y };
    let era = yy.div_euclid(400);
    let yoe = yy - era * 400;
    let mp = (mo + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let millis = ((days * 86_400 + h * 3600 + mi * 60 + s) * 1000).checked_add(frac_ms)?;
    u64::try_from(millis).ok()
}

/// The `eventTime` of an event text, in epoch millis (`None`: not JSON, no or bad time).
pub fn event_time_of(event_json: &str) -> Option<EpochMillis> {
    #[derive(serde::Deserialize)]
    struct Time<'a> {
        #[serde(rename = "eventTime", borrow)]
        event_time: Option<std::borrow::Cow<'a, str>>,
    }
    let t: Time<'_> = serde_json::from_str(event_json).ok()?;
    parse_event_time(&t.event_time?)
}

/// The last seq of the longest run of `records` (consecutive seqs from `first_seq`, at most
/// `limit`) whose events happened before `cutoff`; `first_seq - 1` when none may go. Stops
/// at the first record that is too young, beyond `limit`, out of sequence, or whose time
/// cannot be read (an unreadable record is kept, never pruned by guess).
pub fn prunable_through(
    records: &[AuditRecord],
    first_seq: u64,
    limit: u64,
    cutoff: EpochMillis,
) -> u64 {
    let mut through = first_seq.saturating_sub(1);
    for r in records {
        if r.seq != through.saturating_add(1) || r.seq > limit {
            break;
        }
        match event_time_of(&r.event) {
            Some(t) if t < cutoff => through = r.seq,
            _ => break,
        }
    }
    through
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{format_event_time, ChainHead};

    #[test]
    fn event_times_round_trip_through_the_cloudtrail_format() {
        for ms in [0u64, 86_399_000, 951_782_400_000, 1_764_363_397_000] {
            assert_eq!(parse_event_time(&format_event_time(ms)), Some(ms));
        }
        assert_eq!(
            parse_event_time("2026-01-31T12:00:00.250Z"),
            Some(parse_event_time("2026-01-31T12:00:00Z").unwrap() + 250)
        );
        for bad in [
            "",
            "2026-01-31 12:00:00Z",
            "2026-13-01T00:00:00Z",
            "2026-01-31T12:00:00",
        ] {
            assert_eq!(parse_event_time(bad), None, "{bad}");
        }
    }

    fn chain(times: &[Option<u64>]) -> Vec<AuditRecord> {
        let mut head = ChainHead::genesis();
        times
            .iter()
            .map(|t| match t {
                Some(ms) => head.append(format!(
                    "{{\"eventTime\":\"{}\",\"eventName\":\"Encrypt\"}}",
                    format_event_time(*ms)
                )),
                None => head.append("{\"eventName\":\"Encrypt\"}".into()),
            })
            .collect()
    }

    #[test]
    fn pruning_stops_at_the_first_young_or_unreadable_record_and_at_the_limit() {
        let day = 86_400_000;
        let old = Some(day);
        let young = Some(10 * day);
        let records = chain(&[old, old, young, old]);
        assert_eq!(prunable_through(&records, 1, 4, 5 * day), 2);
        assert_eq!(prunable_through(&records, 1, 1, 5 * day), 1, "limit");
        assert_eq!(
            prunable_through(&records, 1, 4, day),
            0,
            "nothing old enough"
        );
        let records = chain(&[old, None, old]);
        assert_eq!(
            prunable_through(&records, 1, 3, 5 * day),
            1,
            "unreadable kept"
        );
        assert_eq!(prunable_through(&records[1..], 2, 3, 5 * day), 1);
    }
}
