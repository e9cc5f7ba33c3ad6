//! Test tools behind the `testing` feature, never compiled into the plugin.

pub mod bottleneck;
