//! One module per subcommand.

pub mod debug;
pub mod exec;
pub mod run;
