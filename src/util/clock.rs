//! Wall-clock timestamps in UTC for log lines and log file names, as mmcv writes them
//! (`2026-12-06 20:30:00,123`, `20261206_203000`), without a date-time dependency.

use std::time::{SystemTime, UNIX_EPOCH};

/// A UTC calendar time to the millisecond.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Utc {
    pub year: i64,
    pub month: u32,
    pub day: u32,
    pub hour: u32,
    pub minute: u32,
    pub second: u32,
    pub millis: u32,
}

impl Utc {
    /// Now (the epoch if the system clock is before it).
    pub fn now() -> Utc {
        let d = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        Utc::from_unix_millis(d.as_millis() as i64)
    }

    /// The calendar time of milliseconds since 1970-01-01 00:00 UTC (the proleptic Gregorian
    /// calendar, Howard Hinnant's `civil_from_days`).
    pub fn from_unix_millis(ms: i64) -> Utc {
        let secs = ms.div_euclid(1000);
        let days = secs.div_euclid(86_400);
        let tod = secs.rem_euclid(86_400);
        let z = days + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z.rem_euclid(146_097);
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
        let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
        let year = yoe + era * 400 + i64::from(month <= 2);
        Utc {
            year,
            month,
            day,
            hour: (tod / 3600) as u32,
            minute: (tod / 60 % 60) as u32,
            second: (tod % 60) as u32,
            millis: ms.rem_euclid(1000) as u32,
        }
    }

    /// `2026-12-06 20:30:00,123` (Python logging's `asctime`, which mmcv's log lines start with).
    pub fn log_stamp(&self) -> String {
        format!(
            "{:04}-{:02}-{:02} {:02}:{:02}:{:02},{:03}",
            self.year, self.month, self.day, self.hour, self.minute, self.second, self.millis
        )
    }

    /// `20261206_203000` (mmcv's `runner.timestamp`, the name of a run's log files).
    pub fn file_stamp(&self) -> String {
        format!(
            "{:04}{:02}{:02}_{:02}{:02}{:02}",
            self.year, self.month, self.day, self.hour, self.minute, self.second
        )
    }
}

#[cfg(test)]
mod tests {
    use super::Utc;

    #[test]
    fn calendar_dates_of_known_instants() {
        let at = |ms| Utc::from_unix_millis(ms);
        assert_eq!(at(0).log_stamp(), "1970-01-01 00:00:00,000");
        assert_eq!(at(951_782_400_000).log_stamp(), "2000-02-29 00:00:00,000");
        assert_eq!(at(1_796_593_830_250).log_stamp(), "2026-12-06 21:50:30,250");
        assert_eq!(at(1_796_593_830_250).file_stamp(), "20261206_215030");
        assert_eq!(at(-1).log_stamp(), "1969-12-31 23:59:59,999");
        assert_eq!(at(4_107_542_399_000).log_stamp(), "2100-02-28 23:59:59,000");
    }
}
