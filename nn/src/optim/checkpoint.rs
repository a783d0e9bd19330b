//! Optimizer checkpoints in the safetensors format.
//!
//! Layout: tensor `"{group}.{param}.{buffer}"` for each state buffer (f32, or f64 for f64
//! parameters, shaped like the parameter), `"{group}.{param}.step"` (u64 scalar), and the u64
//! scalars `"optimizer.step"`, `"optimizer.seed"`, `"optimizer.rng_offset"`. The metadata names
//! the format, the algorithm family, the group sizes, and each group's hyperparameters as text.
//!
//! Loading checks everything (family, groups, parameter counts, every name, dtype and shape)
//! before writing anything, so a mismatched file is an error that leaves the optimizer as it was.

use super::{Algorithm, Optimizer};
use autograd::{DType, Error, Result, Tensor};
use safetensors::tensor::{Dtype, TensorView};
use safetensors::SafeTensors;
use std::collections::HashMap;
use std::path::Path;

const FORMAT: &str = "nn.optim/1";
const OP_SAVE: &str = "Optimizer::save_state";
const OP_LOAD: &str = "Optimizer::load_state";

fn fail(op: &'static str, reason: impl Into<String>) -> Error {
    Error::InvalidArgument {
        op,
        reason: reason.into(),
    }
}

/// The bytes of a state buffer, little-endian.
fn buffer_bytes(t: &Tensor) -> Result<(Dtype, Vec<u8>)> {
    match t.dtype() {
        // `to_vec` downloads CUDA state; on the CPU it is a copy as `with_data` would make.
        DType::F32 => Ok((
            Dtype::F32,
            t.to_vec::<f32>()?.iter().flat_map(|x| x.to_le_bytes()).collect(),
        )),
        DType::F64 => Ok((
            Dtype::F64,
            t.with_data(|d: &[f64]| d.iter().flat_map(|x| x.to_le_bytes()).collect())?,
        )),
        d => Err(fail(OP_SAVE, format!("unexpected state dtype {d}"))),
    }
}

impl<A: Algorithm> Optimizer<A> {
    /// The whole optimizer state as a safetensors buffer.
    pub fn save_state(&self) -> Result<Vec<u8>> {
        let mut owned: Vec<(String, Dtype, Vec<usize>, Vec<u8>)> = Vec::new();
        let scalar = |name: String, v: u64| (name, Dtype::U64, vec![], v.to_le_bytes().to_vec());
        let mut meta = HashMap::new();
        meta.insert("format".to_string(), FORMAT.to_string());
        meta.insert("algorithm".to_string(), A::KIND.to_string());
        meta.insert("groups".to_string(), self.groups.len().to_string());
        for (g, group) in self.groups.iter().enumerate() {
            meta.insert(format!("group.{g}.params"), group.params.len().to_string());
            meta.insert(format!("group.{g}.hyper"), format!("{:?}", group.hyper));
            let names = group.hyper.state_names();
            for (i, (p, s)) in group.params.iter().zip(&self.state[g]).enumerate() {
                owned.push(scalar(format!("{g}.{i}.step"), s.t));
                for (name, buf) in names.iter().zip(&s.buffers) {
                    let (dtype, bytes) = buffer_bytes(buf)?;
                    owned.push((format!("{g}.{i}.{name}"), dtype, p.shape().to_vec(), bytes));
                }
            }
        }
        owned.push(scalar("optimizer.step".into(), self.step));
        owned.push(scalar("optimizer.seed".into(), self.seed));
        owned.push(scalar("optimizer.rng_offset".into(), self.rng_offset));
        let views = owned
            .iter()
            .map(|(n, d, s, b)| {
                Ok((
                    n.clone(),
                    TensorView::new(*d, s.clone(), b).map_err(|e| fail(OP_SAVE, e.to_string()))?,
                ))
            })
            .collect::<Result<Vec<_>>>()?;
        safetensors::serialize(views, Some(meta)).map_err(|e| fail(OP_SAVE, e.to_string()))
    }

    /// Restores a state written by [`Optimizer::save_state`] for the same groups.
    pub fn load_state(&mut self, bytes: &[u8]) -> Result<()> {
        let file = SafeTensors::deserialize(bytes)
            .map_err(|e| fail(OP_LOAD, format!("not a safetensors buffer: {e}")))?;
        let (_, header) = SafeTensors::read_metadata(bytes).map_err(|e| fail(OP_LOAD, e.to_string()))?;
        let meta = header.metadata().clone().unwrap_or_default();
        let get = |k: &str| meta.get(k).map(String::as_str);
        if get("format") != Some(FORMAT) {
            return Err(fail(
                OP_LOAD,
                format!("format {:?}, expected {FORMAT:?}", get("format")),
            ));
        }
        if get("algorithm") != Some(A::KIND) {
            return Err(fail(
                OP_LOAD,
                format!(
                    "checkpoint of {:?}, this optimizer is {}",
                    get("algorithm"),
                    A::KIND
                ),
            ));
        }
        let groups = self.groups.len().to_string();
        if get("groups") != Some(groups.as_str()) {
            return Err(fail(
                OP_LOAD,
                format!("{:?} groups in the checkpoint, {groups} here", get("groups")),
            ));
        }
        let u64_of = |name: &str| -> Result<u64> {
            let v = file
                .tensor(name)
                .map_err(|_| fail(OP_LOAD, format!("missing {name}")))?;
            match (v.dtype(), v.shape(), v.data().try_into()) {
                (Dtype::U64, [], Ok(b)) => Ok(u64::from_le_bytes(b)),
                _ => Err(fail(OP_LOAD, format!("{name} is not a u64 scalar"))),
            }
        };
        // Check everything first, collecting what to write.
        let mut writes: Vec<(usize, usize, Option<usize>, Vec<u8>)> = Vec::new();
        let mut steps = Vec::new();
        for (g, group) in self.groups.iter().enumerate() {
            let n = group.params.len().to_string();
            if get(&format!("group.{g}.params")) != Some(n.as_str()) {
                return Err(fail(
                    OP_LOAD,
                    format!("group {g}: parameter count differs (here {n})"),
                ));
            }
            for (i, s) in self.state[g].iter().enumerate() {
                steps.push((g, i, u64_of(&format!("{g}.{i}.step"))?));
                for (k, (name, buf)) in group.hyper.state_names().iter().zip(&s.buffers).enumerate() {
                    let key = format!("{g}.{i}.{name}");
                    let v = file
                        .tensor(&key)
                        .map_err(|_| fail(OP_LOAD, format!("missing {key}")))?;
                    let want = if buf.dtype() == DType::F64 {
                        Dtype::F64
                    } else {
                        Dtype::F32
                    };
                    if v.dtype() != want || v.shape() != buf.shape() {
                        return Err(Error::ShapeMismatch {
                            op: OP_LOAD,
                            shapes: vec![buf.shape().into(), v.shape().into()],
                            reason: format!(
                                "{key}: checkpoint has {:?} {:?}, expected {want:?}",
                                v.dtype(),
                                v.shape()
                            ),
                        });
                    }
                    writes.push((g, i, Some(k), v.data().to_vec()));
                }
            }
        }
        let (step, seed, rng_offset) = (
            u64_of("optimizer.step")?,
            u64_of("optimizer.seed")?,
            u64_of("optimizer.rng_offset")?,
        );
        autograd::no_grad(|| -> Result<()> {
            for (g, i, k, data) in &writes {
                let slot = &mut self.state[*g][*i].buffers[k.expect("state buffer")];
                if slot.device() != autograd::Device::Cpu {
                    // CUDA state (always f32) is replaced by an upload of the checkpoint's
                    // values: the kernels only ever see the current buffer's address.
                    let values: Vec<f32> = data
                        .chunks_exact(4)
                        .map(|b| f32::from_le_bytes(b.try_into().expect("4 bytes")))
                        .collect();
                    *slot = Tensor::from_vec(values, slot.shape(), autograd::Device::Cpu)?
                        .to_device(slot.device())?;
                    continue;
                }
                let buf = &*slot;
                match buf.dtype() {
                    DType::F32 => buf.with_data_mut(|d: &mut [f32]| {
                        for (x, b) in d.iter_mut().zip(data.chunks_exact(4)) {
                            *x = f32::from_le_bytes(b.try_into().expect("4 bytes"));
                        }
                    })?,
                    _ => buf.with_data_mut(|d: &mut [f64]| {
                        for (x, b) in d.iter_mut().zip(data.chunks_exact(8)) {
                            *x = f64::from_le_bytes(b.try_into().expect("8 bytes"));
                        }
                    })?,
                }
            }
            Ok(())
        })?;
        for (g, i, t) in steps {
            self.state[g][i].t = t;
        }
        (self.step, self.seed, self.rng_offset) = (step, seed, rng_offset);
        Ok(())
    }

    /// [`Optimizer::save_state`] to a file.
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        std::fs::write(path, self.save_state()?)
            .map_err(|e| fail(OP_SAVE, format!("{}: {e}", path.display())))
    }

    /// [`Optimizer::load_state`] from a file.
    pub fn load(&mut self, path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|e| fail(OP_LOAD, format!("{}: {e}", path.display())))?;
        self.load_state(&bytes)
    }
}
