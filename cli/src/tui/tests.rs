//! Snapshot tests of rendered frames.
