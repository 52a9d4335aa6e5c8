//! Weights out: a model's tensors as a safetensors file in the naming other code loads with
//! `load_state_dict(strict=True)` (through `safetensors.torch.load_file`). mmrun's parameter
//! names are mmdetection's, so `mmdet` keeps every name; `torchvision` keeps the backbone,
//! without its `backbone.` prefix, as torchvision's ResNet names it. Both add the
//! `num_batches_tracked` counter PyTorch keeps beside each BatchNorm's statistics (mmrun's BN
//! has none; it is written as 0, which PyTorch reads only when a BN's momentum is `None`).

use super::StateDict;
use safetensors::{Dtype, tensor::TensorView};

/// Whose parameter names the file uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Naming {
    /// mmdetection's whole detector (`backbone.…`, `neck.…`, `bbox_head.…`).
    Mmdet,
    /// torchvision's ResNet: the backbone alone, `layer1.0.conv1.weight`.
    Torchvision,
}

/// The safetensors bytes of `weights` in `naming`; `metadata` goes in the header.
pub fn to_safetensors(
    weights: &StateDict,
    naming: Naming,
    metadata: std::collections::HashMap<String, String>,
) -> Result<Vec<u8>, String> {
    let mut tensors: Vec<(String, Dtype, Vec<usize>, Vec<u8>)> = Vec::new();
    for (name, t) in weights {
        let name = match naming {
            Naming::Mmdet => name.as_str(),
            Naming::Torchvision => match name.strip_prefix("backbone.") {
                Some(rest) => rest,
                None => continue,
            },
        };
        let bytes = t.data.iter().flat_map(|v| v.to_le_bytes()).collect();
        tensors.push((name.to_string(), Dtype::F32, t.shape.clone(), bytes));
        if let Some(bn) = name.strip_suffix(".running_mean") {
            let zero = 0i64.to_le_bytes().to_vec();
            tensors.push((
                format!("{bn}.num_batches_tracked"),
                Dtype::I64,
                vec![],
                zero,
            ));
        }
    }
    if tensors.is_empty() {
        return Err(match naming {
            Naming::Torchvision => "the model has no `backbone.` parameters to export".into(),
            Naming::Mmdet => "the checkpoint holds no weights".into(),
        });
    }
    let views = tensors
        .iter()
        .map(|(k, dtype, shape, bytes)| {
            TensorView::new(*dtype, shape.clone(), bytes)
                .map(|v| (k.clone(), v))
                .map_err(|e| format!("tensor `{k}`: {e}"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    safetensors::serialize(views, Some(metadata)).map_err(|e| e.to_string())
}
