//! Modules, losses, optimizers and schedules. The modules arrive with issue 9, the optimizers with issue 6.
