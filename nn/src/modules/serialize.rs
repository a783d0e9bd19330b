//! A module's parameters as a safetensors file (`safetensors.torch.save_model` / `load_model`):
//! one tensor per dotted parameter name, f32 or f64 little-endian, with the metadata
//! `format = nn.modules/1`. Loading checks every name, dtype and shape before writing anything,
//! so a file for another architecture is an error that leaves the module unchanged.

use super::Module;
use autograd::{no_grad, DType, Device, Error, Result, Tensor};
use safetensors::tensor::{Dtype, TensorView};
use safetensors::SafeTensors;
use std::collections::{HashMap, HashSet};

const FORMAT: &str = "nn.modules/1";
const OP_SAVE: &str = "save_parameters";
const OP_LOAD: &str = "load_parameters";

fn fail(op: &'static str, reason: impl Into<String>) -> Error {
    Error::InvalidArgument {
        op,
        reason: reason.into(),
    }
}

/// Every parameter of `module` as a safetensors buffer (bit-exact values).
pub fn save_parameters(module: &dyn Module) -> Result<Vec<u8>> {
    let mut owned: Vec<(String, Dtype, Vec<usize>, Vec<u8>)> = Vec::new();
    let mut err = None;
    module.visit_parameters(&mut |name, p| {
        let bytes = match p.dtype() {
            DType::F32 => p
                .to_vec::<f32>()
                .map(|v| (Dtype::F32, v.iter().flat_map(|x| x.to_le_bytes()).collect())),
            DType::F64 => p
                .to_vec::<f64>()
                .map(|v| (Dtype::F64, v.iter().flat_map(|x| x.to_le_bytes()).collect())),
            d => Err(fail(
                OP_SAVE,
                format!("parameter `{name}` has dtype {d}; f32 and f64 are saved"),
            )),
        };
        match bytes {
            Ok((dt, b)) => owned.push((name.to_string(), dt, p.shape().to_vec(), b)),
            Err(e) => {
                err.get_or_insert(e);
            }
        }
    });
    if let Some(e) = err {
        return Err(e);
    }
    let views = owned
        .iter()
        .map(|(n, d, s, b)| {
            let view = TensorView::new(*d, s.clone(), b).map_err(|e| fail(OP_SAVE, e.to_string()))?;
            Ok((n.clone(), view))
        })
        .collect::<Result<Vec<_>>>()?;
    let meta = HashMap::from([("format".to_string(), FORMAT.to_string())]);
    safetensors::serialize(views, Some(meta)).map_err(|e| fail(OP_SAVE, e.to_string()))
}

/// Overwrites `module`'s parameters (in place, so optimizers holding them see the new values)
/// with those in `bytes`. The file must hold exactly the module's names, with matching dtypes
/// and shapes.
pub fn load_parameters(module: &mut dyn Module, bytes: &[u8]) -> Result<()> {
    let st = SafeTensors::deserialize(bytes).map_err(|e| fail(OP_LOAD, e.to_string()))?;
    let mut staged: Vec<(Tensor, Tensor)> = Vec::new();
    let mut seen = HashSet::new();
    let mut err: Option<Error> = None;
    module.visit_parameters(&mut |name, p| {
        if err.is_some() {
            return;
        }
        seen.insert(name.to_string());
        let staged_one = (|| -> Result<Tensor> {
            let v = st
                .tensor(name)
                .map_err(|_| fail(OP_LOAD, format!("the file has no parameter `{name}`")))?;
            let expected = match p.dtype() {
                DType::F32 => Dtype::F32,
                DType::F64 => Dtype::F64,
                d => {
                    return Err(fail(
                        OP_LOAD,
                        format!("parameter `{name}` has unsupported dtype {d}"),
                    ))
                }
            };
            if v.dtype() != expected || v.shape() != p.shape() {
                return Err(fail(
                    OP_LOAD,
                    format!(
                        "parameter `{name}`: file has {:?} {:?}, module has {} {:?}",
                        v.dtype(),
                        v.shape(),
                        p.dtype(),
                        p.shape()
                    ),
                ));
            }
            let data = v.data();
            let t = match expected {
                Dtype::F32 => Tensor::from_vec(
                    data.chunks_exact(4)
                        .map(|b| f32::from_le_bytes(b.try_into().expect("4 bytes")))
                        .collect(),
                    p.shape(),
                    Device::Cpu,
                )?,
                _ => Tensor::from_vec(
                    data.chunks_exact(8)
                        .map(|b| f64::from_le_bytes(b.try_into().expect("8 bytes")))
                        .collect(),
                    p.shape(),
                    Device::Cpu,
                )?,
            };
            t.to_device(p.device())
        })();
        match staged_one {
            Ok(t) => staged.push((p.clone(), t)),
            Err(e) => err = Some(e),
        }
    });
    if let Some(e) = err {
        return Err(e);
    }
    if let Some(extra) = st.names().into_iter().find(|n| !seen.contains(*n)) {
        return Err(fail(
            OP_LOAD,
            format!("the file has parameter `{extra}`, which the module lacks"),
        ));
    }
    no_grad(|| staged.iter().try_for_each(|(p, t)| p.detach().copy_(t)))
}

/// [`save_parameters`] to a file.
pub fn save_file(module: &dyn Module, path: impl AsRef<std::path::Path>) -> Result<()> {
    let bytes = save_parameters(module)?;
    std::fs::write(path.as_ref(), bytes)
        .map_err(|e| fail(OP_SAVE, format!("{}: {e}", path.as_ref().display())))
}

/// [`load_parameters`] from a file.
pub fn load_file(module: &mut dyn Module, path: impl AsRef<std::path::Path>) -> Result<()> {
    let bytes = std::fs::read(path.as_ref())
        .map_err(|e| fail(OP_LOAD, format!("{}: {e}", path.as_ref().display())))?;
    load_parameters(module, &bytes)
}
