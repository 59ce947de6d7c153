//! One module per subcommand.

pub mod bench;
pub mod compile;
pub mod explain;
pub mod validate;
