#![allow(unused)]
#[vexil_client::feature_flag("new_dashboard", user = account)]
fn dashboard(user_id: &str) -> bool {
    true
}

fn main() {}
