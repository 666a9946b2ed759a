#![allow(unused)]
#[vexil_client::feature_flag("new_dashboard")]
fn dashboard(user_id: &str) -> bool {
    true
}

fn main() {}
