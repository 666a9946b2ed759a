#![allow(unused)]
#[vexil_client::feature_flag("new_dashboard", user = user_id)]
struct Dashboard;

fn main() {}
