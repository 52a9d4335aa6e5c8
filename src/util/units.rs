//! Quantities with units that recipes write (`500 iters`, `12 epochs`) as the rest of the
//! crate receives them. After checking, a recipe hands consumers a JSON tree in which a
//! quantity is the string `"500 iters"`; this type parses and prints exactly that form.
//! Also how byte counts are printed ([`human_bytes`]).

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

/// Bytes in a human unit: `1.5 GiB`.
pub fn human_bytes(bytes: u128) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    let mut v = bytes as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < units.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{bytes} B")
    } else {
        format!("{v:.1} {}", units[u])
    }
}

/// What a training-length quantity counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PeriodUnit {
    Iters,
    Epochs,
}

/// A count of iterations or epochs, e.g. `500 iters`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Period {
    pub count: u64,
    pub unit: PeriodUnit,
}

impl Period {
    pub fn iters(count: u64) -> Self {
        Period {
            count,
            unit: PeriodUnit::Iters,
        }
    }
    pub fn epochs(count: u64) -> Self {
        Period {
            count,
            unit: PeriodUnit::Epochs,
        }
    }
    /// The unit's canonical spelling for a count (`1 epoch`, `2 epochs`).
    pub fn unit_name(&self) -> &'static str {
        match (self.unit, self.count == 1) {
            (PeriodUnit::Iters, true) => "iter",
            (PeriodUnit::Iters, false) => "iters",
            (PeriodUnit::Epochs, true) => "epoch",
            (PeriodUnit::Epochs, false) => "epochs",
        }
    }
}

impl fmt::Display for Period {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.count, self.unit_name())
    }
}

/// Why a text is not a [`Period`] (`N iters` or `N epochs`).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PeriodError {
    /// Not two words.
    #[error("expected `N iters` or `N epochs`, found `{text}`")]
    Form {
        /// The text as given.
        text: String,
    },
    /// A count that is not a whole number (or does not fit 64 bits).
    #[error("`{count}` is not a whole number")]
    Count {
        /// The count as given.
        count: String,
        #[source]
        source: std::num::ParseIntError,
    },
    /// A unit other than iters or epochs.
    #[error("unknown unit `{unit}`: expected iters or epochs")]
    Unit {
        /// The unit as given.
        unit: String,
    },
}

impl std::str::FromStr for Period {
    type Err = PeriodError;
    fn from_str(s: &str) -> Result<Self, PeriodError> {
        let mut parts = s.split_whitespace();
        let (Some(n), Some(u), None) = (parts.next(), parts.next(), parts.next()) else {
            return Err(PeriodError::Form { text: s.into() });
        };
        let count: u64 = n.parse().map_err(|source| PeriodError::Count {
            count: n.into(),
            source,
        })?;
        let unit = match u {
            "iter" | "iters" => PeriodUnit::Iters,
            "epoch" | "epochs" => PeriodUnit::Epochs,
            other => return Err(PeriodError::Unit { unit: other.into() }),
        };
        Ok(Period { count, unit })
    }
}

impl Serialize for Period {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Period {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_through_json() {
        for p in [Period::iters(500), Period::epochs(1), Period::epochs(12)] {
            let j = serde_json::to_string(&p).unwrap();
            assert_eq!(serde_json::from_str::<Period>(&j).unwrap(), p);
        }
        assert_eq!("1 epoch".parse::<Period>().unwrap(), Period::epochs(1));
        let e = "3 days".parse::<Period>().unwrap_err();
        assert!(
            matches!(&e, PeriodError::Unit { unit } if unit == "days"),
            "{e}"
        );
        assert_eq!(
            e.to_string(),
            "unknown unit `days`: expected iters or epochs"
        );
    }
}
