//! What jobd's tests share and its release crates do not carry: the one way to start jobd in a
//! test (`server`: the real binary, signed calls, `jobd-client` clients), the loads and verdicts
//! of the tests that break things (`chaos`), PostgreSQL test databases (`database`) and private
//! clusters (`private_cluster`), a clock tests move by hand (`clock`), and the store
//! conformance suite every backend runs (`store_conformance`). A dev-dependency only.

pub mod chaos;
pub mod clock;
pub mod database;
pub mod private_cluster;
pub mod server;
pub mod store_conformance;
