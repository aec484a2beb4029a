//! slugc: a reproducible buildpack compiler.

pub mod slug;
