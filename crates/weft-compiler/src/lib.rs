//! Compiles a validated [`weft_model::Model`] into per-VRF zoning rules keyed by EPG
//! class, the way ACI's APIC renders contracts into the leaves' zoning rules.
//!
//! Invariants:
//! - No I/O. Same input (model and previous allocation) gives the same output.
//! - Rule count depends on contracts, filters and EPGs, never on endpoints.
//! - A class ID, VRF ID or VNI is reused only after its owner is deleted.

mod alloc;
mod budget;
mod compile;
mod explain;
mod rules;
mod security;

pub use alloc::{Allocation, AllocationError};
pub use budget::{CompileBudget, ContractShare, Limit, OverBudget};
pub use compile::{
    CompileError, CompileStats, CompiledPolicy, Compiler, compile, compile_within, gateway_mac,
};
pub use explain::{Explanation, explain};
pub use rules::*;
pub use security::{PortView, SecurityVerdict, security_verdict};
