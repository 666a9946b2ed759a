#![allow(unused)]
#[vexil_client::feature_flag("new_dashboard", user = user_id, default = false)]
fn dashboard(user_id: &str) -> bool {
    true
}

fn main() {}
