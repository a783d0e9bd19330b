//! The tape: reverse-mode automatic differentiation.
//!
//! Each op that has a tracked input records one [`Node`]: its name, handles to its inputs'
//! graph entries, and a backward closure that owns exactly what the gradient needs (an input's
//! values, the output, a saved statistic) and nothing else. The tracked output points to its
//! node, so the recorded graph lives exactly as long as some tensor computed from it: a forward
//! pass that is never differentiated frees itself, with no global tape to clear.
//!
//! [`Tensor::backward`] orders the nodes reachable from the output topologically (this ordered
//! list is the tape) and walks it in reverse. Each node's incoming gradient is taken out of the
//! gradient map when its backward runs, so intermediate gradients are freed as soon as they are
//! consumed; only leaves' gradients are returned. Contributions to the same tensor are added in
//! place into the buffer of the first one.
//!
//! Backward closures compute with ordinary tensor ops under [`no_grad`], so they run on whatever
//! device the tensors are on.
//!
//! Why not a global tape (a `Vec` every op appends to)? A forward pass that is never
//! backpropagated (evaluation, an aborted step) would stay on it until someone cleared it, and
//! a thread-local tape would tie tensors to threads. Ownership through the output does neither.

use crate::{Error, Result, Shape, Tensor};
use smallvec::SmallVec;
use std::cell::Cell;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Identity of a tensor in the graph, stable across clones and views of the same handle.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TensorId(u64);

impl TensorId {
    fn new() -> TensorId {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        TensorId(NEXT.fetch_add(1, Ordering::Relaxed))
    }
}

/// The gradients of the inputs, given the output's gradient and which inputs need one.
pub type BackwardFn = dyn Fn(&Tensor, &[bool]) -> Result<Vec<Option<Tensor>>> + Send + Sync;

/// A recorded op.
pub struct Node {
    pub(crate) op: &'static str,
    /// One entry per op input, `None` for inputs that do not require gradient.
    inputs: SmallVec<[Option<Var>; 3]>,
    /// Shapes of the inputs, to check what backward returns.
    input_shapes: SmallVec<[Shape; 3]>,
    backward: Box<BackwardFn>,
}

impl Drop for Node {
    /// Drop the graph behind this node iteratively: the default recursive drop of a chain of
    /// `Arc<Node>`s overflows the stack on deep graphs (a long training loop unrolled, a
    /// 20k-op chain in the tests).
    fn drop(&mut self) {
        let mut stack: Vec<Arc<Node>> = self.inputs.drain(..).flatten().filter_map(|v| v.node).collect();
        while let Some(node) = stack.pop() {
            // Only the last owner unlinks; shared nodes are still in use elsewhere.
            if let Ok(mut node) = Arc::try_unwrap(node) {
                stack.extend(node.inputs.drain(..).flatten().filter_map(|v| v.node));
            }
        }
    }
}

/// A tensor's graph entry: an id, and the node that produced it (`None` for a leaf).
#[derive(Clone)]
pub struct Var {
    pub(crate) id: TensorId,
    pub(crate) node: Option<Arc<Node>>,
}

impl Var {
    pub(crate) fn leaf() -> Var {
        Var {
            id: TensorId::new(),
            node: None,
        }
    }
}

thread_local! {
    static GRAD_ENABLED: Cell<bool> = const { Cell::new(true) };
}

/// Whether ops on this thread currently record onto the graph.
pub fn is_grad_enabled() -> bool {
    GRAD_ENABLED.with(|g| g.get())
}

/// Run `f` without recording: outputs do not require gradient (`torch.no_grad()`).
pub fn no_grad<R>(f: impl FnOnce() -> R) -> R {
    let _guard = NoGradGuard::new();
    f()
}

/// Disables recording on this thread until dropped; nests correctly.
pub struct NoGradGuard {
    previous: bool,
}

impl NoGradGuard {
    #[allow(clippy::new_without_default)]
    pub fn new() -> NoGradGuard {
        let previous = GRAD_ENABLED.with(|g| g.replace(false));
        NoGradGuard { previous }
    }
}

impl Drop for NoGradGuard {
    fn drop(&mut self) {
        GRAD_ENABLED.with(|g| g.set(self.previous));
    }
}

/// Record `op` if recording is on and any input requires gradient; otherwise return `output`
/// untracked and drop the closure (and what it saved) at once.
///
/// `output` must be untracked, and the closure must capture only untracked tensors (use
/// `detach()` on inputs it saves): a captured tracked tensor would keep its graph alive, and a
/// captured tracked output would form a cycle.
pub(crate) fn record(
    op: &'static str,
    inputs: &[&Tensor],
    output: Tensor,
    backward: impl Fn(&Tensor, &[bool]) -> Result<Vec<Option<Tensor>>> + Send + Sync + 'static,
) -> Tensor {
    debug_assert!(
        output.0.var.is_none(),
        "{op}: output passed to record must be untracked"
    );
    if !is_grad_enabled() || inputs.iter().all(|t| t.0.var.is_none()) {
        return output;
    }
    let node = Node {
        op,
        inputs: inputs.iter().map(|t| t.0.var.clone()).collect(),
        input_shapes: inputs.iter().map(|t| t.0.shape.clone()).collect(),
        backward: Box::new(backward),
    };
    output.with_var(Some(Var {
        id: TensorId::new(),
        node: Some(Arc::new(node)),
    }))
}

/// The error for ops without a backward: fine on constants, refused on tracked inputs (a silent
/// zero gradient would be a wrong gradient).
pub(crate) fn ensure_untracked(op: &'static str, inputs: &[&Tensor]) -> Result<()> {
    if is_grad_enabled() && inputs.iter().any(|t| t.requires_grad()) {
        return Err(Error::NoBackward { op });
    }
    Ok(())
}

/// Gradients of the leaves, keyed by their graph identity.
#[derive(Default, Debug)]
pub struct Gradients {
    map: HashMap<TensorId, Tensor>,
}

impl Gradients {
    /// The gradient of `t`, if any path from the output reached it.
    pub fn get(&self, t: &Tensor) -> Option<&Tensor> {
        self.map.get(&t.grad_id()?)
    }

    pub fn remove(&mut self, t: &Tensor) -> Option<Tensor> {
        self.map.remove(&t.grad_id()?)
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

/// Add `g` into the gradient stored for `id`: in place when that buffer is ours alone,
/// otherwise (it is shared with another tensor, e.g. `add` passes its incoming gradient on to
/// both inputs) into a new buffer that later contributions then add into in place.
fn accumulate(map: &mut HashMap<TensorId, Tensor>, id: TensorId, g: Tensor) -> Result<()> {
    match map.get_mut(&id) {
        None => {
            map.insert(id, g);
        }
        Some(existing) => {
            let exclusive = Arc::strong_count(&existing.0.storage) == 1 && existing.is_contiguous();
            if exclusive {
                existing.add_scaled_(&g, 1.0)?;
            } else {
                *existing = existing.add(&g)?;
            }
        }
    }
    Ok(())
}

/// Nodes reachable from `root`, inputs before the ops that consume them (iterative DFS, so
/// deep graphs do not overflow the stack).
fn topological_order(root: &Var) -> Vec<Var> {
    let mut order = Vec::new();
    let mut visited = HashSet::new();
    // (var, whether its inputs have been pushed)
    let mut stack = vec![(root.clone(), false)];
    while let Some((var, expanded)) = stack.pop() {
        if expanded {
            order.push(var);
            continue;
        }
        if !visited.insert(var.id) {
            continue;
        }
        stack.push((var.clone(), true));
        if let Some(node) = &var.node {
            for input in node.inputs.iter().flatten() {
                if !visited.contains(&input.id) {
                    stack.push((input.clone(), false));
                }
            }
        }
    }
    order
}

impl Tensor {
    /// Gradients of this one-element tensor with respect to every leaf it depends on
    /// (`torch.Tensor.backward`, but returned rather than stored on the leaves).
    pub fn backward(&self) -> Result<Gradients> {
        if self.numel() != 1 {
            return Err(Error::BadSeed {
                output: self.0.shape.clone(),
                seed: None,
            });
        }
        let seed = Tensor::ones(self.shape(), self.dtype(), self.device())?;
        self.backward_with(&seed)
    }

    /// Reverse mode from a non-scalar output with an explicit seed gradient of the output's
    /// shape (the vector in the vector-Jacobian product).
    pub fn backward_with(&self, seed: &Tensor) -> Result<Gradients> {
        if seed.shape() != self.shape() {
            return Err(Error::BadSeed {
                output: self.0.shape.clone(),
                seed: Some(seed.0.shape.clone()),
            });
        }
        if seed.dtype() != self.dtype() {
            return Err(Error::DTypeMismatch {
                op: "backward_with",
                dtypes: vec![self.dtype(), seed.dtype()],
            });
        }
        let Some(root) = &self.0.var else {
            return Err(Error::InvalidArgument {
                op: "backward",
                reason: "the tensor does not require gradient (no input was marked with set_requires_grad)"
                    .into(),
            });
        };
        let _guard = NoGradGuard::new();
        let order = topological_order(root);
        let mut pending: HashMap<TensorId, Tensor> = HashMap::new();
        pending.insert(root.id, seed.detach().contiguous()?);
        let mut leaves = Gradients::default();
        for var in order.iter().rev() {
            // Taking the gradient out frees it once this node has passed it on.
            let Some(grad) = pending.remove(&var.id) else {
                continue;
            };
            let Some(node) = &var.node else {
                leaves.map.insert(var.id, grad);
                continue;
            };
            let needs: SmallVec<[bool; 3]> = node.inputs.iter().map(|i| i.is_some()).collect();
            let grads = (node.backward)(&grad, &needs)?;
            drop(grad);
            for (i, (input, g)) in node.inputs.iter().zip(grads).enumerate() {
                let (Some(input), Some(g)) = (input, g) else {
                    continue;
                };
                if g.shape() != node.input_shapes[i].as_slice() {
                    return Err(Error::ShapeMismatch {
                        op: node.op,
                        shapes: vec![node.input_shapes[i].clone(), g.0.shape.clone()],
                        reason: format!(
                            "backward returned a gradient of the wrong shape for input {i} (a bug)"
                        ),
                    });
                }
                accumulate(&mut pending, input.id, g)?;
            }
        }
        Ok(leaves)
    }

    /// Names of the ops recorded in this tensor's graph, each once (for coverage checks and
    /// for readers inspecting what a computation recorded).
    pub fn graph_ops(&self) -> Vec<&'static str> {
        let Some(root) = &self.0.var else {
            return Vec::new();
        };
        let mut ops: Vec<&'static str> = topological_order(root)
            .iter()
            .filter_map(|v| v.node.as_ref().map(|n| n.op))
            .collect();
        ops.sort_unstable();
        ops.dedup();
        ops
    }
}
