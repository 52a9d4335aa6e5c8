//! The optimizer update as a backend op: torch.optim's SGD and AdamW rules applied to each
//! parameter's value from its gradient and state, on whichever backend the three live.
//! `cpu::optim` holds the rules' one implementation on the host (the runner's optimizer calls
//! it on its own slices); the device backends' kernels are checked against it.

/// The rule, with the hyper-parameters every parameter of one update shares.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum UpdateRule {
    /// torch.optim.SGD: state `[momentum_buffer]` while `momentum > 0`, none otherwise.
    Sgd {
        momentum: f64,
        dampening: f64,
        nesterov: bool,
    },
    /// torch.optim.AdamW without amsgrad: state `[exp_avg, exp_avg_sq]`.
    AdamW { beta1: f64, beta2: f64, eps: f64 },
}

impl UpdateRule {
    /// How many state buffers of the parameter's length the rule reads and writes.
    pub fn state_buffers(&self) -> usize {
        match self {
            UpdateRule::Sgd { momentum, .. } if *momentum == 0.0 => 0,
            UpdateRule::Sgd { .. } => 1,
            UpdateRule::AdamW { .. } => 2,
        }
    }
}

/// What differs between the parameters of one update.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ParamHyper {
    /// The learning rate times the parameter's `lr_mult`.
    pub lr: f64,
    /// The weight decay times the parameter's `decay_mult`.
    pub weight_decay: f64,
    /// This update's number for the parameter, from 1 (AdamW's bias corrections).
    pub step: u64,
    /// The state holds nothing yet: SGD's momentum buffer takes the first direction (torch's
    /// `buf = d.clone()`), AdamW's moments start from zero. The buffers' contents are ignored.
    pub fresh: bool,
    /// Each gradient element is multiplied by this (in f32) before the rule reads it: gradient
    /// clipping's coefficient, applied where the gradients lie; 1 leaves them as they are.
    pub grad_scale: f64,
}

/// One parameter's update: its first `len` elements of value, gradient and each state buffer.
pub struct ParamUpdate<'a, Buf> {
    pub len: usize,
    pub value: &'a mut Buf,
    pub grad: &'a Buf,
    /// [`UpdateRule::state_buffers`] buffers, in the order the rule names them.
    pub state: &'a mut [Buf],
    pub hyper: ParamHyper,
}

/// Why an update's arguments do not fit its rule, before anything is written.
pub(crate) fn check_update<Buf>(
    rule: &UpdateRule,
    p: &ParamUpdate<'_, Buf>,
    len_of: impl Fn(&Buf) -> usize,
) -> Result<(), String> {
    let need = rule.state_buffers();
    if p.state.len() < need {
        return Err(format!(
            "{need} state buffers needed, {} given",
            p.state.len()
        ));
    }
    let short = |what: &str, have: usize| {
        (have < p.len).then(|| format!("{what} holds {have} elements, the update needs {}", p.len))
    };
    let mut problems = [("value", len_of(p.value)), ("gradient", len_of(p.grad))]
        .into_iter()
        .chain(p.state[..need].iter().map(|s| ("state", len_of(s))))
        .filter_map(|(what, have)| short(what, have));
    if let Some(e) = problems.next() {
        return Err(e);
    }
    if matches!(rule, UpdateRule::AdamW { .. }) && p.hyper.step == 0 {
        return Err("AdamW's step counts from 1".into());
    }
    Ok(())
}
