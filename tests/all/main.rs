//! End-to-end tests against the real compiled plugins, in one binary.

mod audit;
mod campaigns;
mod cli;
mod compat;
mod consortium;
mod damaged;
mod delivery;
mod generate;
mod identity;
mod letters;
mod manifest;
mod messaging;
mod needs;
mod notices;
mod privacy;
mod privacy_properties;
mod readers;
mod report;
mod retention;
mod sandbox;
mod scoring;
mod serve;
mod store;
mod sync;
mod tidy;
mod workers;
