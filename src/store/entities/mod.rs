//! sea-orm entities, one per table. Models never leave `store/`.

pub mod audit;
pub mod evaluation;
pub mod flag;
pub mod group;
pub mod last_evaluation;
pub mod segment;
