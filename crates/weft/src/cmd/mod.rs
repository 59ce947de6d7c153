//! One module per subcommand.

pub mod agent;
pub mod app;
pub mod apply;
pub mod bench;
pub mod bench_cluster;
pub mod bench_failover;
pub mod bench_ports;
pub mod bench_propagation;
pub mod bench_servers;
pub mod bench_tasks;
pub mod bench_writes;
pub mod clouds;
pub mod compile;
pub mod demo;
pub mod dev;
pub mod discovery;
pub mod dns;
pub mod endpoint;
pub mod exec;
pub mod explain;
pub mod get;
pub mod logs;
pub mod ps;
pub mod server;
pub mod tenant;
pub mod validate;
