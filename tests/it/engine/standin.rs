//! A stand-in model for testing the Runner: linear regression `y = w·x + b` on generated
//! data, with a per-epoch shuffled sampler and an L2 penalty as a second loss term. Small
//! enough that whole runs take milliseconds, real enough that losses fall and resume must
//! restore weights, momentum, sampler order and hook state to continue exactly.

use mmrun::engine::params::{ParamKind, ParamSet};
use mmrun::engine::{Metrics, Task, TaskError, TrainOutput};
use mmrun::util::rng::Rng;

pub const DIM: usize = 3;

pub struct Linear {
    train: Vec<([f32; DIM], f32)>,
    val: Vec<([f32; DIM], f32)>,
    batch: usize,
    order: Vec<usize>,
    /// Seconds to sleep per train step (so a child process can be killed mid-run).
    pub sleep: f64,
    /// Make the loss NaN at this global iteration.
    pub nan_at: Option<u64>,
    /// Report `r2` as this value from the given evaluation on (0-based; a diverged score).
    pub r2_from_eval: Option<(u64, f64)>,
    /// The sampler's seed: each epoch's order is a function of `(seed, epoch)`.
    pub seed: u64,
    evaluations: u64,
    steps: u64,
}

fn sample(rng: &mut Rng) -> ([f32; DIM], f32) {
    let x = [0; DIM].map(|_| rng.range_f64(-1.0, 1.0) as f32);
    let y = 1.5 * x[0] - 2.0 * x[1] + 0.5 * x[2] + 0.3 + 0.05 * rng.normal_f64() as f32;
    (x, y)
}

impl Linear {
    pub fn new(n_train: usize, batch: usize) -> Self {
        let mut rng = Rng::seed(42);
        let train = (0..n_train).map(|_| sample(&mut rng)).collect();
        let val = (0..16).map(|_| sample(&mut rng)).collect();
        Linear {
            train,
            val,
            batch,
            order: (0..n_train).collect(),
            sleep: 0.0,
            nan_at: None,
            r2_from_eval: None,
            seed: 3,
            evaluations: 0,
            steps: 0,
        }
    }

    pub fn params() -> ParamSet {
        let mut p = ParamSet::new();
        p.add("fc.weight", &[DIM], ParamKind::Weight, true, vec![0.1; DIM])
            .unwrap();
        p.add("fc.bias", &[1], ParamKind::Bias, true, vec![0.0])
            .unwrap();
        p.add("fc.frozen", &[1], ParamKind::Weight, false, vec![7.0])
            .unwrap();
        p
    }

    fn predict(params: &ParamSet, x: &[f32; DIM]) -> f32 {
        let w = params.get("fc.weight").unwrap().values();
        let b = params.get("fc.bias").unwrap().values()[0];
        x.iter().zip(w).map(|(a, b)| a * b).sum::<f32>() + b
    }

    fn mse(params: &ParamSet, data: &[([f32; DIM], f32)]) -> f64 {
        data.iter()
            .map(|(x, y)| ((Self::predict(params, x) - y) as f64).powi(2))
            .sum::<f64>()
            / data.len() as f64
    }
}

impl Task for Linear {
    fn iters_per_epoch(&self) -> u64 {
        (self.train.len() / self.batch) as u64
    }

    fn set_epoch(&mut self, epoch: u64) {
        self.order = (0..self.train.len()).collect();
        Rng::stream(self.seed, epoch).shuffle(&mut self.order);
    }

    fn train_step(
        &mut self,
        params: &mut ParamSet,
        inner_iter: u64,
        loss_scale: f64,
    ) -> Result<TrainOutput, TaskError> {
        if self.sleep > 0.0 {
            std::thread::sleep(std::time::Duration::from_secs_f64(self.sleep));
        }
        let idx = &self.order[inner_iter as usize * self.batch..][..self.batch];
        let mut gw = [0f32; DIM];
        let mut gb = 0f32;
        let mut loss = 0f32;
        let n = self.batch as f32;
        for &i in idx {
            let (x, y) = &self.train[i];
            let e = Self::predict(params, x) - y;
            loss += e * e / n;
            for d in 0..DIM {
                gw[d] += 2.0 * e * x[d] / n;
            }
            gb += 2.0 * e / n;
        }
        let w = params.get("fc.weight").unwrap().values().to_vec();
        let reg: f32 = 0.01 * w.iter().map(|v| v * v).sum::<f32>();
        for d in 0..DIM {
            gw[d] += 0.02 * w[d];
        }
        let scale = loss_scale as f32;
        params.get_mut("fc.weight").unwrap().grad = gw.iter().map(|g| g * scale).collect();
        params.get_mut("fc.bias").unwrap().grad = vec![gb * scale];
        let mut loss_mse = loss as f64;
        if self.nan_at == Some(self.steps) {
            loss_mse = f64::NAN;
        }
        self.steps += 1;
        Ok(TrainOutput {
            losses: vec![
                ("loss_mse".into(), loss_mse),
                ("loss_reg".into(), reg as f64),
            ],
            data_time: 0.0,
        })
    }

    fn val_iters(&self) -> u64 {
        (self.val.len() / self.batch) as u64
    }

    fn val_step(&mut self, params: &ParamSet, i: u64) -> Result<Vec<(String, f64)>, TaskError> {
        let b = &self.val[i as usize * self.batch..][..self.batch];
        Ok(vec![("loss_mse".into(), Self::mse(params, b))])
    }

    fn evaluate(&mut self, params: &ParamSet, limit: Option<u64>) -> Result<Metrics, TaskError> {
        let n = limit.map_or(self.val.len(), |l| {
            (l as usize * self.batch).min(self.val.len())
        });
        let mse = Self::mse(params, &self.val[..n]);
        let mean = self.val[..n].iter().map(|v| v.1 as f64).sum::<f64>() / n as f64;
        let var = self.val[..n]
            .iter()
            .map(|v| (v.1 as f64 - mean).powi(2))
            .sum::<f64>()
            / n as f64;
        let mut r2 = 1.0 - mse / var;
        if let Some((from, value)) = self.r2_from_eval
            && self.evaluations >= from
        {
            r2 = value;
        }
        self.evaluations += 1;
        // `bbox_mAP` repeats r2 so recipes checked against the coco_bbox evaluator can
        // name it in save_best.
        Ok(Metrics::from([
            ("mse".to_string(), mse),
            ("r2".to_string(), r2),
            ("bbox_mAP".to_string(), r2),
        ]))
    }

    fn metric_names(&self) -> Vec<String> {
        vec!["bbox_mAP".into(), "mse".into(), "r2".into()]
    }

    fn state(&self) -> serde_json::Value {
        serde_json::json!({ "steps": self.steps })
    }

    fn load_state(&mut self, state: &serde_json::Value) -> Result<(), TaskError> {
        self.steps = state["steps"]
            .as_u64()
            .ok_or(TaskError("no steps".into()))?;
        Ok(())
    }
}
