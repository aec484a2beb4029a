//! The slug: deterministic tar (`archive`), parallel gzip (`gzip`), the content-addressed
//! store (`store`) and the release manifest (`manifest`).

pub mod gzip;
pub mod manifest;
pub mod store;
