//! Timestamps as OpenStack writes them, without a date library.

/// `2006-01-02T15:04:05.000000Z` (Keystone's `expires_at`, v2.0's `expires`).
pub fn iso8601_micros(ms: u64) -> String {
    let (date, secs) = split(ms);
    format!("{date}T{secs}.{:03}000Z", ms % 1000)
}

/// `2006-01-02T15:04:05Z` (Neutron's `created_at`).
pub fn iso8601(ms: u64) -> String {
    let (date, secs) = split(ms);
    format!("{date}T{secs}Z")
}

fn split(ms: u64) -> (String, String) {
    let secs = ms / 1000;
    let days = i64::try_from(secs / 86_400).unwrap_or(0);
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    (
        format!("{y:04}-{m:02}-{d:02}"),
        format!("{:02}:{:02}:{:02}", rem / 3600, rem % 3600 / 60, rem % 60),
    )
}

/// Howard Hinnant's days-to-civil algorithm.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = u32::try_from(doy - (153 * mp + 2) / 5 + 1).unwrap_or(1);
    let m = u32::try_from(if mp < 10 { mp + 3 } else { mp - 9 }).unwrap_or(1);
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        assert_eq!(iso8601_micros(0), "1970-01-01T00:00:00.000000Z");
        // 2006-01-02T15:04:05.999Z
        assert_eq!(
            iso8601_micros(1_136_214_245_999),
            "2006-01-02T15:04:05.999000Z"
        );
        assert_eq!(iso8601(951_782_400_000), "2000-02-29T00:00:00Z");
    }
}
