//! What the commands that run a recipe (`exec`, `test`, `data browse`, `export`, the ranks of
//! `exec --nproc`) share before their own work: the recipe checked and planned (diagnostics
//! printed), `--device` checked and opened, the shapes dataset made on first use, the
//! detector task built. The helpers that stop a command print why and hand back its exit
//! status; `open_device` and `build_task` hand their errors back.

use crate::data::synth::{
    FIRST_RUN_IMAGES, SynthOptions, generate_if_missing, missing_shapes_root,
};
use crate::plan::{NotPlanned, Plan};
use crate::recipe::{self, CheckOptions, CheckedRecipe, RenderOptions};
use std::path::Path;

/// Opens the device `exec` and `test` run on: `--device` when given, else the recipe's
/// `runtime.backend` (one setting, the command line over the recipe). The adapter chosen among
/// several (wgpu), or the CPU kernels' instruction set, is named on stderr, so a run never
/// lands on another device or kernel path silently.
pub(super) fn open_device(
    flag: Option<&str>,
    plan: &Plan,
) -> Result<crate::backend::Device, crate::backend::DeviceError> {
    let rt = &plan.training.runtime;
    let options = crate::backend::DeviceOptions {
        tf32: rt.tf32,
        deterministic: rt.deterministic,
    };
    let device = crate::backend::Device::open_with(flag.unwrap_or(&rt.device), options)?;
    if device.describe().is_some() {
        crate::errln!("device: {}", device.label());
    } else if matches!(device, crate::backend::Device::Cpu) {
        let isa = crate::backend::cpu::isa::active();
        let fusion = crate::backend::cpu::fused::describe();
        crate::errln!("device: cpu ({}; {fusion})", isa.describe());
    }
    Ok(device)
}

/// The detector task of a plan, on `device`, as one rank of `dist` when given.
pub(super) fn build_task(
    plan: &Plan,
    device: crate::backend::Device,
    dist: Option<crate::dist::Dist>,
) -> Result<
    (
        Box<dyn crate::engine::task::Task>,
        crate::engine::params::ParamSet,
    ),
    String,
> {
    crate::engine::detector::build_task_on(
        &plan.model,
        &plan.data,
        plan.training.runtime.seed,
        plan.metric,
        device,
        plan.training.runtime.precision,
        dist,
    )
}

/// The quickstart trains on the generated shapes dataset: create it on first use.
pub(super) fn ensure_shapes_data(plan: &Plan) {
    let Some(root) = missing_shapes_root(&plan.data) else {
        return;
    };
    crate::errln!(
        "generating the shapes dataset in {} (first run)",
        root.display()
    );
    let options = SynthOptions {
        images: FIRST_RUN_IMAGES,
        ..SynthOptions::default()
    };
    if let Err(e) = generate_if_missing(&root, &options) {
        crate::errln!("warning: could not generate the shapes dataset: {e}");
    }
}

/// The checked recipe and its plan; the diagnostics printed (and the exit status) when the
/// recipe has errors or is partial. `warn`: print its warnings too.
pub(super) fn load_recipe(
    path: &Path,
    set: &[String],
    warn: bool,
) -> Result<(CheckedRecipe, Plan), u8> {
    if let Some(why) = super::unreadable_recipe(path) {
        crate::errln!("error: {why}");
        return Err(super::EXIT_CANNOT_RUN);
    }
    match crate::plan::load(path, set, &CheckOptions::default()) {
        Err(e @ NotPlanned::Partial) => {
            crate::errln!("error: {}: {e}", path.display());
            Err(super::EXIT_CANNOT_RUN)
        }
        Ok((r, plan)) => {
            if warn && !r.warnings.is_empty() {
                crate::err!("{}", r.render(&r.warnings.0));
            }
            Ok((r, plan))
        }
        Err(NotPlanned::Errors(failed)) => {
            let render = RenderOptions::for_stderr();
            crate::err!(
                "{}",
                recipe::render::render_all(&failed.diagnostics.0, &failed.files, render)
            );
            crate::errln!("error: the recipe has errors; nothing was run");
            Err(super::EXIT_PROBLEMS)
        }
    }
}

/// Refuses a misspelt `--device` before anything is read.
pub(super) fn device_flag_ok(flag: Option<&str>) -> Result<(), u8> {
    match flag.map(crate::backend::Device::parse) {
        Some(Err(e)) => {
            crate::errln!("error: {e}");
            Err(super::EXIT_CANNOT_RUN)
        }
        _ => Ok(()),
    }
}
