//! What jobd's tests share and its release crates do not carry: the store conformance suite that
//! every backend runs, and PostgreSQL test databases. A dev-dependency only.

pub mod database;
pub mod store_conformance;
