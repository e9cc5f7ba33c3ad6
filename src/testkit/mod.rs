//! Test tools, behind the `testing` feature and never part of the plugin.

pub mod impair;
pub mod memory;
pub mod relay;
