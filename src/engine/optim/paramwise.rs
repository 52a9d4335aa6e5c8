//! Paramwise learning-rate and weight-decay multipliers, with mmcv's
//! `DefaultOptimizerConstructor` rules: the longest matching custom key wins (ties broken
//! alphabetically) and then bias/norm multipliers do not apply; otherwise biases of
//! non-normalisation layers get `bias_lr_mult`/`bias_decay_mult` and normalisation
//! parameters get `norm_decay_mult`.

use crate::engine::params::ParamKind;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Multipliers for parameters whose full name contains a key.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CustomKey {
    pub lr_mult: f64,
    pub decay_mult: f64,
}

/// `paramwise` options of an optimizer.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Paramwise {
    pub bias_lr_mult: f64,
    pub bias_decay_mult: f64,
    pub norm_decay_mult: f64,
    /// Accepted for mmcv compatibility; mmrun's models have no depthwise convolutions, so
    /// only 1 is meaningful.
    pub dwconv_decay_mult: f64,
    pub custom_keys: BTreeMap<String, CustomKey>,
}

impl Default for Paramwise {
    fn default() -> Self {
        Paramwise {
            bias_lr_mult: 1.0,
            bias_decay_mult: 1.0,
            norm_decay_mult: 1.0,
            dwconv_decay_mult: 1.0,
            custom_keys: BTreeMap::new(),
        }
    }
}

/// `paramwise_cfg` settings that cannot work.
#[derive(Debug, thiserror::Error)]
pub enum ParamwiseError {
    /// `dwconv_decay_mult` other than 1: no model here has a depthwise convolution to apply it
    /// to, so it would silently do nothing.
    #[error(
        "paramwise_cfg.dwconv_decay_mult: mmrun's models have no depthwise convolutions; leave it at 1"
    )]
    DepthwiseDecay,
    /// A `custom_keys` entry named by the empty string (it would match every parameter).
    #[error("paramwise.custom_keys: a key must not be empty")]
    EmptyKey,
    /// A multiplier that is negative or not a number.
    #[error("paramwise.{what} must be a finite number >= 0, got {value}")]
    Multiplier {
        /// Which multiplier.
        what: &'static str,
        /// Its value.
        value: f64,
    },
}

impl Paramwise {
    pub(super) fn validate(&self) -> Result<(), ParamwiseError> {
        if self.dwconv_decay_mult != 1.0 {
            return Err(ParamwiseError::DepthwiseDecay);
        }
        let mut all = vec![
            ("bias_lr_mult", self.bias_lr_mult),
            ("bias_decay_mult", self.bias_decay_mult),
            ("norm_decay_mult", self.norm_decay_mult),
        ];
        for (k, c) in &self.custom_keys {
            if k.is_empty() {
                return Err(ParamwiseError::EmptyKey);
            }
            all.push(("custom_keys lr_mult", c.lr_mult));
            all.push(("custom_keys decay_mult", c.decay_mult));
        }
        for (what, value) in all {
            if !(value.is_finite() && value >= 0.0) {
                return Err(ParamwiseError::Multiplier { what, value });
            }
        }
        Ok(())
    }

    /// `(lr_mult, decay_mult)` for a parameter.
    pub fn multipliers(&self, name: &str, kind: ParamKind) -> (f64, f64) {
        // BTreeMap iterates alphabetically; a stable sort by length (longest first) keeps that
        // order among equal lengths, which is mmcv's `sorted(sorted(keys), key=len, reverse)`.
        let mut keys: Vec<&String> = self.custom_keys.keys().collect();
        keys.sort_by_key(|k| std::cmp::Reverse(k.len()));
        if let Some(k) = keys.into_iter().find(|k| name.contains(k.as_str())) {
            let c = &self.custom_keys[k];
            return (c.lr_mult, c.decay_mult);
        }
        match kind {
            ParamKind::Bias => (self.bias_lr_mult, self.bias_decay_mult),
            ParamKind::Norm => (1.0, self.norm_decay_mult),
            ParamKind::Weight | ParamKind::Buffer => (1.0, 1.0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn longest_key_wins_and_overrides_bias_rules() {
        let mut pw = Paramwise {
            bias_lr_mult: 2.0,
            bias_decay_mult: 0.0,
            norm_decay_mult: 0.5,
            ..Default::default()
        };
        pw.custom_keys.insert(
            "backbone".into(),
            CustomKey {
                lr_mult: 0.1,
                decay_mult: 1.0,
            },
        );
        pw.custom_keys.insert(
            "backbone.layer1".into(),
            CustomKey {
                lr_mult: 0.0,
                decay_mult: 3.0,
            },
        );
        assert_eq!(
            pw.multipliers("backbone.layer1.conv.bias", ParamKind::Bias),
            (0.0, 3.0)
        );
        assert_eq!(
            pw.multipliers("backbone.layer2.conv.bias", ParamKind::Bias),
            (0.1, 1.0)
        );
        assert_eq!(
            pw.multipliers("head.conv.bias", ParamKind::Bias),
            (2.0, 0.0)
        );
        assert_eq!(pw.multipliers("head.gn.bias", ParamKind::Norm), (1.0, 0.5));
        assert_eq!(
            pw.multipliers("head.conv.weight", ParamKind::Weight),
            (1.0, 1.0)
        );
    }
}
