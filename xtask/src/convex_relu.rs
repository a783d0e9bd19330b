//! `cargo xtask convex-relu`: global training of a two-layer ReLU network on a CSV file through
//! its convex reformulation ([161], `algorithms::convex_relu`), then the recovered network
//! written as JSON.

use std::path::PathBuf;

use algorithms::convex_relu::{
    enumerate_patterns, recover_network, sample_patterns, solve_admm, solve_fista, solve_gated_barrier,
    solve_robust, AdmmOptions, BarrierOptions, ConvexSolution, Dataset, FistaOptions, Loss, RobustOptions,
};
use clap::{Args, ValueEnum};

use crate::progress;

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Solver {
    /// The exact program (cone constraints) by ADMM.
    Admm,
    /// The unconstrained gated-ReLU relaxation by restarted FISTA.
    Fista,
    /// The same gated relaxation through its n-dimensional dual: a log-barrier Newton method
    /// that stops on a proven duality gap (fast when the sample count n is in the hundreds).
    Barrier,
    /// Adversarial training for l-inf perturbations of radius --eps (hinge loss, labels +-1).
    Robust,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Device {
    Cpu,
    Cuda,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LossArg {
    Squared,
    Logistic,
}

#[derive(Args)]
pub struct ConvexReluArgs {
    /// CSV file: one sample per line, the last column the target (a header line is allowed).
    #[arg(long)]
    data: PathBuf,
    /// Weight-decay strength beta.
    #[arg(long, default_value_t = 0.01)]
    beta: f64,
    #[arg(long, value_enum, default_value_t = Solver::Admm)]
    solver: Solver,
    /// `exact` (every pattern of the hyperplane arrangement; low-dimensional data only) or a
    /// number N of Gaussian directions to sample.
    #[arg(long, default_value = "exact")]
    patterns: String,
    /// Where the pattern products run: `cuda` needs a GPU (an error saying why otherwise).
    #[arg(long, value_enum, default_value_t = Device::Cpu)]
    device: Device,
    /// Training loss for admm and fista (robust always uses the hinge loss).
    #[arg(long, value_enum, default_value_t = LossArg::Squared)]
    loss: LossArg,
    /// l-inf perturbation radius for --solver robust.
    #[arg(long, default_value_t = 0.05)]
    eps: f64,
    /// Do not append a constant-1 bias column.
    #[arg(long)]
    no_bias: bool,
    #[arg(long)]
    max_iters: Option<usize>,
    /// Seed for sampled patterns.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Print a progress line every this many iterations (0: never).
    #[arg(long, default_value_t = 500)]
    log_every: usize,
    /// Where to write the recovered network (JSON).
    #[arg(long, default_value = "convex_relu_network.json")]
    out: PathBuf,
}

pub fn run(args: &ConvexReluArgs) -> Result<u8, String> {
    // The pattern products run on the chosen device (algorithms::convex_relu::device says what
    // stays on the host). Without a usable GPU, --device cuda is an error saying why.
    let device = match args.device {
        Device::Cpu => algorithms::convex_relu::Device::Cpu,
        Device::Cuda => {
            if let Err(why) = kernels::cuda::CudaDevice::get(0) {
                return Err(format!("--device cuda: no usable GPU ({why}); use --device cpu"));
            }
            algorithms::convex_relu::Device::Cuda(0)
        }
    };
    let raw = Dataset::read_csv(&args.data).map_err(|e| format!("{}: {e}", args.data.display()))?;
    let ds = if args.no_bias { raw } else { raw.with_bias() };
    progress(&format!(
        "data: {} samples, {} features{} from {}",
        ds.n,
        ds.d,
        if ds.has_bias {
            " (bias column included)"
        } else {
            ""
        },
        args.data.display()
    ));
    let pats = match args.patterns.as_str() {
        "exact" => enumerate_patterns(&ds, 5_000_000)?,
        n => {
            let count: usize = n
                .parse()
                .map_err(|_| format!("--patterns takes `exact` or a number, got `{n}`"))?;
            sample_patterns(&ds, count, args.seed)
        }
    };
    progress(&format!("patterns: {}", pats.describe()));
    let loss = match (args.solver, args.loss) {
        (Solver::Robust, _) | (_, LossArg::Logistic) => Loss::Logistic,
        _ => Loss::Squared,
    };
    loss.check_targets(&ds.y)?;
    let sol: ConvexSolution = match args.solver {
        Solver::Admm => {
            let mut opt = AdmmOptions {
                loss,
                beta: args.beta,
                log_every: args.log_every,
                device,
                ..Default::default()
            };
            opt.max_iters = args.max_iters.unwrap_or(opt.max_iters);
            solve_admm(&ds, &pats, &opt)?
        }
        Solver::Fista => {
            let mut opt = FistaOptions {
                loss,
                beta: args.beta,
                log_every: args.log_every,
                device,
                ..Default::default()
            };
            opt.max_iters = args.max_iters.unwrap_or(opt.max_iters);
            solve_fista(&ds, &pats, &opt)?
        }
        Solver::Barrier => {
            let mut opt = BarrierOptions {
                loss,
                beta: args.beta,
                log_every: args.log_every,
                device,
                ..Default::default()
            };
            opt.max_iters = args.max_iters.unwrap_or(opt.max_iters);
            solve_gated_barrier(&ds, &pats, &opt)?
        }
        Solver::Robust => {
            let mut opt = RobustOptions {
                beta: args.beta,
                eps: args.eps,
                log_every: args.log_every,
                device,
                ..Default::default()
            };
            opt.max_iters = args.max_iters.unwrap_or(opt.max_iters);
            solve_robust(&ds, &pats, &opt)?
        }
    };
    let last = sol
        .history
        .last()
        .copied()
        .unwrap_or((0, f64::NAN, f64::NAN, f64::NAN));
    let residuals = if sol.solver == "fista" {
        format!("gradient mapping {:.3e}", last.2)
    } else if sol.solver == "barrier" {
        format!(
            "duality gap {:.3e} (a proven bound on the objective's error)",
            last.2
        )
    } else {
        format!("primal {:.3e}, dual {:.3e}", last.2, last.3)
    };
    let net = recover_network(&sol.v, &sol.w, ds.d, 1e-8);
    let loss_name = match (args.solver, loss) {
        (Solver::Robust, _) => "hinge (worst case over the eps-ball)",
        (_, Loss::Squared) => "squared",
        (_, Loss::Logistic) => "logistic",
    };
    println!("solver:      {}", sol.solver);
    println!("loss:        {loss_name}, beta = {}", args.beta);
    println!("patterns:    {}", pats.describe());
    println!("objective:   {:.12e} (convex)", sol.objective);
    println!(
        "residuals:   {residuals}; cone violation {:.3e}",
        sol.cone_violation
    );
    println!(
        "iterations:  {} ({}), {:.3} s",
        sol.iterations,
        if sol.converged {
            "converged"
        } else {
            "iteration limit reached"
        },
        sol.seconds
    );
    let mut extra = vec![
        ("solver", format!("\"{}\"", sol.solver)),
        ("beta", format!("{:?}", args.beta)),
        ("convex_objective", format!("{:?}", sol.objective)),
        ("patterns", pats.p.to_string()),
    ];
    match args.solver {
        Solver::Admm => {
            let nonconvex = net.objective(&ds, loss, args.beta);
            println!(
                "recovered:   width {}, non-convex objective {nonconvex:.12e} (relative difference {:.1e})",
                net.width(),
                (nonconvex - sol.objective).abs() / sol.objective.abs()
            );
            extra.push(("nonconvex_objective", format!("{nonconvex:?}")));
        }
        Solver::Fista | Solver::Barrier => println!(
            "recovered:   width {}; a gated-ReLU solution: the ReLU network built from it is an approximation \
             (non-convex objective {:.6e})",
            net.width(),
            net.objective(&ds, loss, args.beta)
        ),
        Solver::Robust => {
            println!("recovered:   width {} (robust for l-inf radius {})", net.width(), args.eps);
            extra.push(("eps", format!("{:?}", args.eps)));
        }
    }
    std::fs::write(&args.out, net.to_json(ds.has_bias, &extra))
        .map_err(|e| format!("cannot write {}: {e}", args.out.display()))?;
    println!("wrote:       {}", args.out.display());
    Ok(0)
}
